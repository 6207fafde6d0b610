/* A stand-in bcryptprimitives.dll for Wine 8, which lacks it: Rust's standard library imports
 * ProcessPrng from it. Forwards to RtlGenRandom (advapi32's SystemFunction036). Built and put
 * next to wssh.exe by scripts/build-windows for the Wine tests only; real Windows has the DLL. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
