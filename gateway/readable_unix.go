//go:build linux || darwin || freebsd || netbsd || openbsd

package gateway

import (
	"net"
	"syscall"
)

// rawConn returns nc's syscall.RawConn, to wait for it to be readable
// without reading (conn.waitReadable), or nil.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok { // e.g. TLS: what is readable is not the socket's bytes
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readable is a syscall.RawConn.Read callback: it reports whether the
// socket has bytes to read, or an end or error for a read to report,
// without taking any; false makes Read wait until it is readable.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
