// Reference server of the disconnect-detection benchmark: Go's net/http, standard library only.
//
// Every request waits on <-r.Context().Done(), which net/http closes when the client goes
// away (its background read of the connection sees EOF or an error). Lines on stdout, as the
// ctoken example server's --events (CLOCK_MONOTONIC nanoseconds):
//
//	VERSION <go version>
//	READY <port>
//	START <id> <ns>
//	CANCELLED <id> <ns> reason=context_canceled
//
// The CANCELLED time is taken as soon as the handler wakes from r.Context().Done(): that is
// when a Go handler learns that its client has left. <id> is the ?id= parameter (or a counter).
//
// Build: go build -o disconnect_go_server main.go (no module needed). Run: disconnect_go_server -port 0
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// monotonicNs reads CLOCK_MONOTONIC (clock id 1), the clock the driver and the other servers
// use; Go's time package hides its monotonic reading.
func monotonicNs() int64 {
	var ts syscall.Timespec
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("clock_gettime: " + errno.Error())
	}
	return ts.Nano()
}

// emit writes one whole line with one write(2); os.File serialises concurrent writes.
func emit(line string) {
	if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
		os.Exit(1) // the driver is gone
	}
}

var nextID uint64

func requestID(r *http.Request) uint64 {
	if id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64); err == nil {
		return id
	}
	return atomic.AddUint64(&nextID, 1)
}

// wait: the request that waits, without using CPU, until its client leaves.
func wait(w http.ResponseWriter, r *http.Request) {
	id := requestID(r)
	emit(fmt.Sprintf("START %d %d", id, monotonicNs()))
	<-r.Context().Done()
	ns := monotonicNs() // first: the detection time
	emit(fmt.Sprintf("CANCELLED %d %d reason=context_canceled", id, ns))
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: an ephemeral port)")
	flag.Parse()

	listener, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "disconnect_go_server:", err)
		os.Exit(1)
	}
	// No timeouts at all (the zero values): only the client's close ends a request.
	server := &http.Server{Handler: http.HandlerFunc(wait)}
	emit("VERSION " + runtime.Version())
	emit("READY " + strconv.Itoa(listener.Addr().(*net.TCPAddr).Port))
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, "disconnect_go_server:", err)
		os.Exit(1)
	}
}
