package platform_linux

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// isPermission reports whether err says the caller lacks CAP_NET_ADMIN
// (or CAP_NET_RAW).
func isPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

func errNeedAdmin(err error) error {
	return fmt.Errorf("tcpinc: permission denied (%w): run as root or grant CAP_NET_ADMIN and CAP_NET_RAW", err)
}

// isMissing reports whether err says a kernel facility does not exist.
func isMissing(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT)
}
