package app

import (
	"context"
	"net/http"
)

// mountOps registers the ops endpoints (not built yet).
func (a *App) mountOps(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
