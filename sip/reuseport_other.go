//go:build !unix

package sip

import "syscall"

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

// haveReusePort is false: one socket per UDP address.
const haveReusePort = false
