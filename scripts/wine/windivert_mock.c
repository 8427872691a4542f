/*
 * A stand-in WinDivert.dll for tcpinc's tests under wine: no driver, no
 * network. It exports the WinDivert 2.2 calls tcpinc makes, with the
 * documented signatures, error codes and overlapped-I/O behaviour, over
 * in-memory queues the test drives through Mock* exports:
 *
 *   MockQueueRecv(h, pkt, len, addr)   a packet the "driver" captured;
 *                                      completes a pending receive
 *   MockTakeSent(h, buf, len, addr, ms) the next packet tcpinc injected
 *   MockSetOpenError(code)             make WinDivertOpen fail so
 *   MockSetVersion(major, minor)       what WINDIVERT_PARAM_VERSION_* say
 *   MockFailSendLength(len)            batches holding a packet of this
 *                                      length fail (ERROR_INVALID_PARAMETER)
 *   MockSetAsyncSend(on)               SendEx completes later, from
 *                                      another thread (ERROR_IO_PENDING)
 *   MockAddressLayout(addr)            fills an address through C bit
 *                                      fields, to check the Go layout
 *   MockMaxConcurrentOpens()           most WinDivertOpen calls that ran
 *                                      at once (tcpinc serialises them)
 *   MockFilter(h, buf, len), MockParam(h, p), MockPending(h), MockReset()
 *
 * Written for tcpinc from the WinDivert 2.2 documentation; built with
 * mingw-w64 by the test setup (scripts/wine/windivert-test.sh) and never
 * shipped or committed as a binary.
 */
#include <windows.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#define EXPORT __declspec(dllexport)

/* WINDIVERT_ADDRESS as documented: 80 bytes. */
typedef struct {
	int64_t Timestamp;
	uint32_t Layer : 8;
	uint32_t Event : 8;
	uint32_t Sniffed : 1;
	uint32_t Outbound : 1;
	uint32_t Loopback : 1;
	uint32_t Impostor : 1;
	uint32_t IPv6 : 1;
	uint32_t IPChecksum : 1;
	uint32_t TCPChecksum : 1;
	uint32_t UDPChecksum : 1;
	uint32_t Reserved1 : 8;
	uint32_t Reserved2;
	union {
		struct {
			uint32_t IfIdx;
			uint32_t SubIfIdx;
		} Network;
		uint8_t Reserved3[64];
	};
} ADDR;

_Static_assert(sizeof(ADDR) == 80, "WINDIVERT_ADDRESS is 80 bytes");

#define BATCH_MAX 255
#define MTU_MAX (40 + 0xffff)
#define MAX_HANDLES 64
#define QUEUE_MAX 65536

#define ST_SUCCESS ((ULONG_PTR)0)
#define ST_PENDING ((ULONG_PTR)0x00000103)
#define ST_PIPE_EMPTY ((ULONG_PTR)0xC00000D9)  /* -> ERROR_NO_DATA */
#define ST_BUFFER_TOO_SMALL ((ULONG_PTR)0xC0000023) /* -> ERROR_INSUFFICIENT_BUFFER */
#define ST_CANCELLED ((ULONG_PTR)0xC0000120)   /* -> ERROR_OPERATION_ABORTED */

typedef struct pkt {
	struct pkt *next;
	UINT len;
	ADDR addr;
	uint8_t data[];
} pkt;

typedef struct {
	pkt *head, *tail;
	int n;
} queue;

typedef struct {
	int used;   /* 1: open; 2: closed, but injected packets not yet taken */
	HANDLE h; /* an event: gives a real handle that CloseHandle accepts */
	char filter[4096];
	UINT64 params[5];
	int shut_recv, shut_send;
	queue recv, sent;
	/* The pending overlapped receive, if any. */
	int pending;
	uint8_t *buf;
	UINT buf_len;
	UINT *recv_len;
	ADDR *addr;
	UINT *addr_len;
	OVERLAPPED *ov;
} handle;

static CRITICAL_SECTION mu;
static CONDITION_VARIABLE sent_cv;
static handle handles[MAX_HANDLES];
static DWORD open_error;
static UINT64 version_major = 2, version_minor = 2;
static UINT fail_send_len;
static int async_send;
static LONG opens_inside, opens_max;

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
	(void)inst;
	(void)reserved;
	if (reason == DLL_PROCESS_ATTACH) {
		InitializeCriticalSection(&mu);
		InitializeConditionVariable(&sent_cv);
	}
	return TRUE;
}

static handle *lookup(HANDLE h)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (handles[i].used == 1 && handles[i].h == h)
			return &handles[i];
	return NULL;
}

/* lookup_sent also finds a closed handle whose injected packets the test
 * has not taken yet: a packet WinDivertSendEx accepted was injected, so
 * closing the handle afterwards must not lose it. */
static handle *lookup_sent(HANDLE h)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (handles[i].used && handles[i].h == h)
			return &handles[i];
	return NULL;
}

/* release frees a closed handle's slot once its packets are taken. The
 * event stays open until then, so its value is not reused meanwhile. */
static void release(handle *hd)
{
	if (hd->used == 2 && !hd->sent.head) {
		CloseHandle(hd->h);
		hd->used = 0;
	}
}

static void push(queue *q, pkt *p)
{
	p->next = NULL;
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->n++;
}

static pkt *pop(queue *q)
{
	pkt *p = q->head;
	if (p) {
		q->head = p->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
	}
	return p;
}

static void drain(queue *q)
{
	pkt *p;
	while ((p = pop(q)))
		free(p);
}

static void complete(OVERLAPPED *ov, ULONG_PTR status, ULONG_PTR n)
{
	ov->InternalHigh = n;
	MemoryBarrier();
	ov->Internal = status;
	if (ov->hEvent)
		SetEvent(ov->hEvent);
}

/* fill copies queued packets into a receive, WinDivertRecvEx-style: as
 * many as fit the buffer and the address array, at most BATCH_MAX. The
 * caller holds mu and has checked that the queue is not empty. */
static ULONG_PTR fill(handle *hd, uint8_t *buf, UINT buf_len, ADDR *addr,
	UINT *addr_len, UINT *n_out)
{
	UINT max_addrs = addr_len ? *addr_len / sizeof(ADDR) : 1;
	UINT off = 0, i = 0;
	ULONG_PTR st = ST_SUCCESS;
	if (max_addrs > BATCH_MAX)
		max_addrs = BATCH_MAX;
	while (hd->recv.head && i < max_addrs) {
		pkt *p = hd->recv.head;
		if (p->len > buf_len - off) {
			if (i > 0)
				break;
			/* The first packet does not fit: truncated, and an error. */
			memcpy(buf, p->data, buf_len);
			addr[0] = p->addr;
			free(pop(&hd->recv));
			off = buf_len;
			i = 1;
			st = ST_BUFFER_TOO_SMALL;
			break;
		}
		memcpy(buf + off, p->data, p->len);
		addr[i] = p->addr;
		off += p->len;
		i++;
		free(pop(&hd->recv));
	}
	if (addr_len)
		*addr_len = i * sizeof(ADDR);
	*n_out = off;
	return st;
}

static void complete_pending(handle *hd)
{
	UINT n;
	ULONG_PTR st;
	if (!hd->pending)
		return;
	if (hd->recv.head) {
		st = fill(hd, hd->buf, hd->buf_len, hd->addr, hd->addr_len, &n);
		if (hd->recv_len)
			*hd->recv_len = n;
		hd->pending = 0;
		complete(hd->ov, st, n);
	} else if (hd->shut_recv) {
		hd->pending = 0;
		complete(hd->ov, ST_PIPE_EMPTY, 0);
	}
}

EXPORT HANDLE WinDivertOpen(const char *filter, int layer, INT16 priority, UINT64 flags)
{
	LONG inside = InterlockedIncrement(&opens_inside);
	LONG seen;
	while ((seen = opens_max) < inside)
		InterlockedCompareExchange(&opens_max, inside, seen);
	Sleep(5); /* widen the window an unserialised caller would race in */
	InterlockedDecrement(&opens_inside);

	if (open_error) {
		SetLastError(open_error);
		return INVALID_HANDLE_VALUE;
	}
	if (!filter || layer < 0 || layer > 4 || priority < -30000 || priority > 30000 ||
		(flags & ~(UINT64)0x3f) || strlen(filter) >= sizeof(handles[0].filter)) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return INVALID_HANDLE_VALUE;
	}
	EnterCriticalSection(&mu);
	for (int i = 0; i < MAX_HANDLES; i++) {
		handle *hd = &handles[i];
		if (hd->used)
			continue;
		memset(hd, 0, sizeof(*hd));
		hd->h = CreateEventW(NULL, TRUE, FALSE, NULL);
		if (!hd->h)
			break;
		hd->used = 1;
		strcpy(hd->filter, filter);
		hd->params[0] = 4096;
		hd->params[1] = 2000;
		hd->params[2] = 4194304;
		hd->params[3] = version_major;
		hd->params[4] = version_minor;
		LeaveCriticalSection(&mu);
		return hd->h;
	}
	LeaveCriticalSection(&mu);
	SetLastError(ERROR_TOO_MANY_OPEN_FILES);
	return INVALID_HANDLE_VALUE;
}

EXPORT BOOL WinDivertRecvEx(HANDLE h, void *packet, UINT packet_len, UINT *recv_len,
	UINT64 flags, ADDR *addr, UINT *addr_len, OVERLAPPED *ov)
{
	handle *hd;
	UINT n;
	ULONG_PTR st;
	if (flags != 0 || !packet || !addr) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return FALSE;
	}
	for (;;) {
		EnterCriticalSection(&mu);
		hd = lookup(h);
		if (!hd) {
			LeaveCriticalSection(&mu);
			SetLastError(ERROR_INVALID_HANDLE);
			return FALSE;
		}
		if (hd->recv.head) {
			st = fill(hd, packet, packet_len, addr, addr_len, &n);
			LeaveCriticalSection(&mu);
			if (recv_len)
				*recv_len = n;
			if (ov)
				complete(ov, st, n);
			if (st != ST_SUCCESS) {
				SetLastError(ERROR_INSUFFICIENT_BUFFER);
				return FALSE;
			}
			return TRUE;
		}
		if (hd->shut_recv) {
			LeaveCriticalSection(&mu);
			SetLastError(ERROR_NO_DATA);
			return FALSE;
		}
		if (ov) {
			if (hd->pending) {
				LeaveCriticalSection(&mu);
				SetLastError(ERROR_BUSY);
				return FALSE;
			}
			hd->pending = 1;
			hd->buf = packet;
			hd->buf_len = packet_len;
			hd->recv_len = recv_len;
			hd->addr = addr;
			hd->addr_len = addr_len;
			hd->ov = ov;
			ov->Internal = ST_PENDING;
			LeaveCriticalSection(&mu);
			SetLastError(ERROR_IO_PENDING);
			return FALSE;
		}
		LeaveCriticalSection(&mu);
		Sleep(1); /* synchronous receive: poll */
	}
}

/* packet_length is the IP packet length at p, or 0 if it is malformed. */
static UINT packet_length(const uint8_t *p, UINT left)
{
	UINT n;
	if (left < 1)
		return 0;
	if ((p[0] >> 4) == 4 && left >= 20)
		n = (UINT)p[2] << 8 | p[3];
	else if ((p[0] >> 4) == 6 && left >= 40)
		n = 40 + ((UINT)p[4] << 8 | p[5]);
	else
		return 0;
	return n >= 20 && n <= left ? n : 0;
}

typedef struct {
	OVERLAPPED *ov;
	ULONG_PTR n;
} async_done;

static DWORD WINAPI finish_later(LPVOID arg)
{
	async_done *d = arg;
	Sleep(2);
	complete(d->ov, ST_SUCCESS, d->n);
	free(d);
	return 0;
}

EXPORT BOOL WinDivertSendEx(HANDLE h, const void *packet, UINT packet_len, UINT *send_len,
	UINT64 flags, const ADDR *addr, UINT addr_len, OVERLAPPED *ov)
{
	const uint8_t *b = packet;
	UINT count = addr_len / sizeof(ADDR), off = 0;
	handle *hd;
	if (flags != 0 || !packet || !addr || count == 0 || count > BATCH_MAX ||
		addr_len % sizeof(ADDR) != 0) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return FALSE;
	}
	/* Validate the whole batch before injecting any of it. */
	for (UINT i = 0; i < count; i++) {
		UINT n = packet_length(b + off, packet_len - off);
		if (n == 0 || (fail_send_len && n == fail_send_len)) {
			SetLastError(ERROR_INVALID_PARAMETER);
			return FALSE;
		}
		off += n;
	}
	if (off != packet_len) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return FALSE;
	}
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd || hd->shut_send) {
		LeaveCriticalSection(&mu);
		SetLastError(hd ? ERROR_NO_DATA : ERROR_INVALID_HANDLE);
		return FALSE;
	}
	off = 0;
	for (UINT i = 0; i < count; i++) {
		UINT n = packet_length(b + off, packet_len - off);
		pkt *p = malloc(sizeof(pkt) + n);
		if (!p)
			break;
		p->len = n;
		p->addr = addr[i];
		memcpy(p->data, b + off, n);
		push(&hd->sent, p);
		off += n;
	}
	WakeAllConditionVariable(&sent_cv);
	LeaveCriticalSection(&mu);
	if (send_len)
		*send_len = off;
	if (ov && async_send) {
		async_done *d = malloc(sizeof(*d));
		HANDLE t;
		d->ov = ov;
		d->n = off;
		ov->Internal = ST_PENDING;
		t = CreateThread(NULL, 0, finish_later, d, 0, NULL);
		if (t)
			CloseHandle(t);
		SetLastError(ERROR_IO_PENDING);
		return FALSE;
	}
	if (ov)
		complete(ov, ST_SUCCESS, off);
	return TRUE;
}

EXPORT BOOL WinDivertShutdown(HANDLE h, int how)
{
	handle *hd;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd || how < 1 || how > 3) {
		LeaveCriticalSection(&mu);
		SetLastError(hd ? ERROR_INVALID_PARAMETER : ERROR_INVALID_HANDLE);
		return FALSE;
	}
	if (how & 1)
		hd->shut_recv = 1;
	if (how & 2)
		hd->shut_send = 1;
	complete_pending(hd);
	LeaveCriticalSection(&mu);
	return TRUE;
}

EXPORT BOOL WinDivertClose(HANDLE h)
{
	handle *hd;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd) {
		LeaveCriticalSection(&mu);
		SetLastError(ERROR_INVALID_HANDLE);
		return FALSE;
	}
	if (hd->pending)
		complete(hd->ov, ST_CANCELLED, 0);
	hd->pending = 0;
	drain(&hd->recv);
	hd->used = 2;
	release(hd);
	WakeAllConditionVariable(&sent_cv);
	LeaveCriticalSection(&mu);
	return TRUE;
}

EXPORT BOOL WinDivertSetParam(HANDLE h, int param, UINT64 value)
{
	static const UINT64 lo[] = {32, 100, 65535}, hi[] = {16384, 16000, 33554432};
	handle *hd;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd || param < 0 || param > 2 || value < lo[param] || value > hi[param]) {
		LeaveCriticalSection(&mu);
		SetLastError(hd ? ERROR_INVALID_PARAMETER : ERROR_INVALID_HANDLE);
		return FALSE;
	}
	hd->params[param] = value;
	LeaveCriticalSection(&mu);
	return TRUE;
}

EXPORT BOOL WinDivertGetParam(HANDLE h, int param, UINT64 *value)
{
	handle *hd;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd || param < 0 || param > 4 || !value) {
		LeaveCriticalSection(&mu);
		SetLastError(hd ? ERROR_INVALID_PARAMETER : ERROR_INVALID_HANDLE);
		return FALSE;
	}
	*value = hd->params[param];
	LeaveCriticalSection(&mu);
	return TRUE;
}

/* ---- test controls ---- */

EXPORT BOOL MockQueueRecv(HANDLE h, const void *data, UINT len, const ADDR *addr)
{
	handle *hd;
	pkt *p;
	if (len > MTU_MAX)
		return FALSE;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (!hd || hd->shut_recv || hd->recv.n >= QUEUE_MAX) {
		LeaveCriticalSection(&mu);
		return FALSE;
	}
	p = malloc(sizeof(pkt) + len);
	if (!p) {
		LeaveCriticalSection(&mu);
		return FALSE;
	}
	p->len = len;
	p->addr = *addr;
	memcpy(p->data, data, len);
	push(&hd->recv, p);
	complete_pending(hd);
	LeaveCriticalSection(&mu);
	return TRUE;
}

/* MockTakeSent returns the length of the next injected packet (copied to
 * buf with its address), 0 after timeout_ms without one, -1 if the
 * handle is gone or buf is too small. */
EXPORT int MockTakeSent(HANDLE h, void *buf, UINT len, ADDR *addr, DWORD timeout_ms)
{
	handle *hd;
	pkt *p;
	int n;
	EnterCriticalSection(&mu);
	for (;;) {
		hd = lookup_sent(h);
		if (!hd || (hd->used == 2 && !hd->sent.head)) {
			if (hd)
				release(hd);
			LeaveCriticalSection(&mu);
			return -1;
		}
		if (hd->sent.head)
			break;
		if (!SleepConditionVariableCS(&sent_cv, &mu, timeout_ms)) {
			LeaveCriticalSection(&mu);
			return 0;
		}
	}
	p = hd->sent.head;
	if (p->len > len) {
		LeaveCriticalSection(&mu);
		return -1;
	}
	pop(&hd->sent);
	release(hd);
	LeaveCriticalSection(&mu);
	memcpy(buf, p->data, p->len);
	*addr = p->addr;
	n = (int)p->len;
	free(p);
	return n;
}

EXPORT void MockSetOpenError(DWORD code) { open_error = code; }
EXPORT void MockSetVersion(UINT64 major, UINT64 minor)
{
	version_major = major;
	version_minor = minor;
}
EXPORT void MockFailSendLength(UINT len) { fail_send_len = len; }
EXPORT void MockSetAsyncSend(int on) { async_send = on; }
EXPORT LONG MockMaxConcurrentOpens(void) { return opens_max; }

EXPORT void MockAddressLayout(ADDR *a)
{
	memset(a, 0, sizeof(*a));
	a->Timestamp = 0x0102030405060708LL;
	a->Layer = 4;
	a->Event = 9;
	a->Outbound = 1;
	a->Impostor = 1;
	a->IPv6 = 1;
	a->TCPChecksum = 1;
	a->Network.IfIdx = 7;
	a->Network.SubIfIdx = 5;
}

EXPORT int MockFilter(HANDLE h, char *buf, UINT len)
{
	handle *hd;
	int n = -1;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (hd && strlen(hd->filter) < len) {
		strcpy(buf, hd->filter);
		n = (int)strlen(hd->filter);
	}
	LeaveCriticalSection(&mu);
	return n;
}

EXPORT UINT64 MockParam(HANDLE h, int param)
{
	handle *hd;
	UINT64 v = 0;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	if (hd && param >= 0 && param <= 4)
		v = hd->params[param];
	LeaveCriticalSection(&mu);
	return v;
}

EXPORT int MockPending(HANDLE h)
{
	handle *hd;
	int v;
	EnterCriticalSection(&mu);
	hd = lookup(h);
	v = hd ? hd->pending : -1;
	LeaveCriticalSection(&mu);
	return v;
}

/* MockHandles lists the open handles (in slot order) into out. */
EXPORT int MockHandles(HANDLE *out, int max)
{
	int n = 0;
	EnterCriticalSection(&mu);
	for (int i = 0; i < MAX_HANDLES && n < max; i++)
		if (handles[i].used == 1)
			out[n++] = handles[i].h;
	LeaveCriticalSection(&mu);
	return n;
}

EXPORT void MockReset(void)
{
	open_error = 0;
	version_major = 2;
	version_minor = 2;
	fail_send_len = 0;
	async_send = 0;
	opens_max = 0;
}
