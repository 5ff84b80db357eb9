//go:build !unix

package eventstream

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/hub"
)

// leanState: the lean path needs non-blocking socket writes (unix only).
type leanState struct{}

func (h *Handler) serveLean(http.ResponseWriter, *http.Request, *hub.Subscription, Access) bool {
	return false
}

// Shutdown does nothing: without the lean path, every stream is a request
// that http.Server.Shutdown waits for.
func (h *Handler) Shutdown(context.Context) error { return nil }
