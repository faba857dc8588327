//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package gateway

import (
	"net"
	"syscall"
)

// rawConn returns nil: conn.waitReadable does not wait on this system, and
// an idle connection waits in Read, with a deeper stack.
func rawConn(net.Conn) syscall.RawConn { return nil }

func readable(uintptr) bool { return true }
