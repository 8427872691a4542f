package platform_windows

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/windows"
)

// DLLName is the file name of WinDivert's user-mode library. The driver,
// WinDivert64.sys, must be in the same directory: WinDivertOpen installs it
// from there.
const DLLName = "WinDivert.dll"

// DLL is a loaded WinDivert.dll. Load it once per process; it is safe for
// concurrent use.
type DLL struct {
	path string
	mod  windows.Handle

	open, recvEx, sendEx, shutdown, close, setParam, getParam uintptr
}

// DefaultDLLPath is WinDivert.dll in the directory of the running
// executable. tcpinc never lets Windows search for the DLL: a WinDivert.dll
// found elsewhere (the working directory, PATH, another product's copy) may
// be another version than the driver next to it, or not WinDivert at all.
func DefaultDLLPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("windivert: locating the executable: %w", err)
	}
	return filepath.Join(filepath.Dir(exe), DLLName), nil
}

var (
	dllMu    sync.Mutex
	dllCache = map[string]*DLL{}
)

// LoadDLL loads the WinDivert.dll at path, which must be absolute, and
// resolves the functions tcpinc calls. Loading the same path again returns
// the same DLL.
func LoadDLL(path string) (*DLL, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("windivert: %s: the path of WinDivert.dll must be absolute", path)
	}
	dllMu.Lock()
	defer dllMu.Unlock()
	if d, ok := dllCache[path]; ok {
		return d, nil
	}
	// LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | SYSTEM32: WinDivert.dll's own
	// imports come from its directory or System32, never from PATH or
	// the working directory.
	mod, err := windows.LoadLibraryEx(path, 0, windows.LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR|windows.LOAD_LIBRARY_SEARCH_SYSTEM32)
	if err != nil {
		return nil, wrapErr(opLoad, err, filepath.Dir(path))
	}
	d := &DLL{path: path, mod: mod}
	for _, p := range []struct {
		name string
		addr *uintptr
	}{
		{"WinDivertOpen", &d.open},
		{"WinDivertRecvEx", &d.recvEx},
		{"WinDivertSendEx", &d.sendEx},
		{"WinDivertShutdown", &d.shutdown},
		{"WinDivertClose", &d.close},
		{"WinDivertSetParam", &d.setParam},
		{"WinDivertGetParam", &d.getParam},
	} {
		if *p.addr, err = windows.GetProcAddress(mod, p.name); err != nil {
			windows.FreeLibrary(mod)
			return nil, wrapErr(opLoad, fmt.Errorf("%s: %w", p.name, err), filepath.Dir(path))
		}
	}
	dllCache[path] = d
	return d, nil
}

// Path is the file the DLL was loaded from.
func (d *DLL) Path() string { return d.path }

// wrapErr turns a Windows error into an *Error with a hint.
func wrapErr(op string, err error, dir string) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return newError(op, uint32(errno), err, dir)
	}
	return fmt.Errorf("windivert: %s: %w", op, err)
}
