using Conntrack.Tool;

return ReplayCommand.Run(args, Console.Out, Console.Error);
