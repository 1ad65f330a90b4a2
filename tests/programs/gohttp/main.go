// A web server on Go's own net/http, which no one here wrote: its requests are read where
// net/http hands them to the handlers, `(*ServeMux).ServeHTTP`. It listens on the address
// given as its argument and exits once it has answered `/quit`, after every request has
// returned from its handler (`Shutdown` waits for that).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
)

func main() {
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	mux.HandleFunc("/quit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "bye")
		close(quit)
	})
	server := &http.Server{Addr: os.Args[1], Handler: mux}
	done := make(chan struct{})
	go func() {
		<-quit
		server.Shutdown(context.Background())
		close(done)
	}()
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// ListenAndServe returns as soon as Shutdown starts; Shutdown returns once it is done.
	<-done
}
