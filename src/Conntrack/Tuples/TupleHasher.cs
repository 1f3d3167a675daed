using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace Conntrack.Tuples;

/// <summary>
/// Keyed hash of a tuple and zone. The kernel keys siphash with a random secret so that nobody outside
/// can steer flows onto one chain; we keep the random key but use a multiply-fold mix (the "mum"
/// construction of wyhash): each 64-bit word is XORed with its own secret, pairs are multiplied to 128
/// bits and the halves folded. Three independent multiplies cover the 40-byte tuple, so the hash costs a
/// few nanoseconds instead of siphash's twenty. Without the key an attacker cannot predict buckets;
/// chains are also capped in length at insert time, as the kernel caps them.
/// </summary>
internal readonly struct TupleHasher
{
    private readonly ulong _k0, _k1, _k2, _k3, _k4, _k5, _k6, _k7;

    private TupleHasher(ReadOnlySpan<ulong> k)
    {
        _k0 = k[0]; _k1 = k[1]; _k2 = k[2]; _k3 = k[3];
        _k4 = k[4]; _k5 = k[5]; _k6 = k[6]; _k7 = k[7];
    }

    /// <summary>A hasher with a fresh random key (one per table, like the kernel's per-boot key).</summary>
    public static TupleHasher CreateRandom()
    {
        Span<ulong> k = stackalloc ulong[8];
        RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(k));
        // An all-zero word would make a multiply lane insensitive to its input; make each key odd.
        for (int i = 0; i < k.Length; i++)
        {
            k[i] |= 1;
        }

        return new TupleHasher(k);
    }

    /// <summary>A hasher with a fixed key, for reproducible tests.</summary>
    public static TupleHasher CreateWithSeed(ulong seed)
    {
        Span<ulong> k = stackalloc ulong[8];
        ulong s = seed;
        for (int i = 0; i < k.Length; i++)
        {
            // splitmix64
            s += 0x9E3779B97F4A7C15UL;
            ulong z = s;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            k[i] = (z ^ (z >> 31)) | 1;
        }

        return new TupleHasher(k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mum(ulong a, ulong b)
    {
        if (Bmi2.X64.IsSupported)
        {
            // MULX for the high half and an IMUL for the low: both stay in registers. A 128-bit product (UInt128 or
            // Math.BigMul's out parameter) makes the JIT store the low half to the stack and load it back.
            return Bmi2.X64.MultiplyNoFlags(a, b) ^ (a * b);
        }

        UInt128 product = (UInt128)a * b;
        return (ulong)(product >> 64) ^ (ulong)product;
    }

    /// <summary>32-bit hash of the tuple in the given zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Hash(in ConntrackTuple tuple, ushort zone)
    {
        ref ulong w = ref Unsafe.As<ConntrackTuple, ulong>(ref Unsafe.AsRef(in tuple));
        ulong a = Mum(w ^ _k0, Unsafe.Add(ref w, 1) ^ _k1);
        ulong b = Mum(Unsafe.Add(ref w, 2) ^ _k2, Unsafe.Add(ref w, 3) ^ _k3);
        ulong c = Mum(Unsafe.Add(ref w, 4) ^ _k4, zone ^ _k5);
        ulong h = Mum(a ^ _k6, b ^ c ^ _k7);
        return (uint)(h ^ (h >> 32));
    }

    /// <summary>Maps a 32-bit hash onto <paramref name="size"/> buckets without a division (the kernel's reciprocal_scale).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Scale(uint hash, uint size) => (int)(((ulong)hash * size) >> 32);
}
