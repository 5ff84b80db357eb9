package app

import (
	"context"
	"net/http"
)

// mountDemo registers the demo endpoints (not built yet).
func (a *App) mountDemo(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
