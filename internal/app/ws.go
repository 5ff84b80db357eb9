package app

import (
	"context"
	"net/http"
)

// mountWS registers the ws endpoints (not built yet).
func (a *App) mountWS(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
