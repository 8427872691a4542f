/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Go test
 * binaries under wine 8 (Debian bookworm), which lacks the DLL. Go's
 * runtime (1.22 and later) needs only ProcessPrng from it. This shim
 * answers with RtlGenRandom (advapi32 SystemFunction036), which wine
 * implements from the host's random source. Built into throwaway wine
 * prefixes by scripts/wine/prefix.sh (wine-test.sh, msi-test.sh); never
 * shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	while (length > 0) {
		ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
		if (!SystemFunction036(data, chunk))
			return FALSE;
		data += chunk;
		length -= chunk;
	}
	return TRUE;
}
