package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

// clusterRoutes shows which instance reconciles which Asterisk node
// (reconciler sharding, issue 19).
func (a *API) clusterRoutes(p *provisioning.Service) {
	h := clusterHandlers{p}
	a.handleRoutes([]route{
		{"GET /v1/cluster/nodes", operator, h.clusterNodes},
	})
}

// clusterHandlers serves the cluster route.
type clusterHandlers struct {
	svc *provisioning.Service
}

// clusterNodes serves GET /v1/cluster/nodes.
func (h clusterHandlers) clusterNodes(w http.ResponseWriter, r *http.Request) error {
	nodes, instances, err := h.svc.Cluster(r.Context())
	if err != nil {
		return err
	}
	if nodes == nil {
		nodes = []provisioning.NodeLease{}
	}
	if instances == nil {
		instances = []provisioning.Instance{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes, "instances": instances})
	return nil
}
