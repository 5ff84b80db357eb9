package app

import (
	"context"
	"net/http"
)

// mountMercure registers the mercure endpoints (not built yet).
func (a *App) mountMercure(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
