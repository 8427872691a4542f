package platform_windows

// WinDivertOpen flags (windivert.h).
const (
	FlagSniff     uint64 = 0x0001
	FlagDrop      uint64 = 0x0002
	FlagRecvOnly  uint64 = 0x0004
	FlagSendOnly  uint64 = 0x0008
	FlagNoInstall uint64 = 0x0010
	FlagFragments uint64 = 0x0020
)

// Param is a WINDIVERT_PARAM.
type Param uint32

const (
	ParamQueueLength  Param = 0 // packets; 32–16384, default 4096
	ParamQueueTime    Param = 1 // milliseconds; 100–16000, default 2000
	ParamQueueSize    Param = 2 // bytes; 65535–33554432, default 4 MiB
	ParamVersionMajor Param = 3 // read-only
	ParamVersionMinor Param = 4 // read-only
)

// Shutdown directions (WINDIVERT_SHUTDOWN).
const (
	ShutdownRecv = 1
	ShutdownSend = 2
	ShutdownBoth = 3
)

// BatchMax is WINDIVERT_BATCH_MAX: the most packets one RecvEx or SendEx
// moves.
const BatchMax = 255

// MTUMax is WINDIVERT_MTU_MAX, the largest packet WinDivert hands over.
const MTUMax = 40 + 0xffff
