package image

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Downloads of registry layers that break in the middle (a connection cut or reset, a timeout) are
// retried: the layer's compressed stream is opened again (a new request) and its scan starts over from
// the first byte, the partial result of the broken attempt thrown away. A partial layer is never
// accepted; a digest or diff ID mismatch, a corrupt stream or a limit exceeded is not retried.
var (
	layerAttempts = 4                      // attempts per layer, the first included
	layerBackoff  = 500 * time.Millisecond // wait before the second attempt, doubled after each
)

// isRemoteLayer reports layers read from a registry (the only ones whose reading can fail transiently).
func isRemoteLayer(l v1.Layer) bool {
	_, ok := l.(*remote.MountableLayer)
	return ok
}

// isTransient reports network failures that a new request may not meet again. The context ending is not
// one of them.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// Extractors may flatten the reader's error into text (%v): recognise the same failures by their message.
	msg := err.Error()
	for _, s := range []string{"unexpected EOF", "connection reset by peer", "broken pipe", "http2: stream closed", "use of closed network connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
