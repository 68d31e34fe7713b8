//go:build !linux

package cluster

import (
	"context"
	"errors"
)

var errNetnsLinux = errors.New("the netns runtime needs Linux (network namespaces)")

// NetnsEnv is what every topology of a netns run shares.
type NetnsEnv struct {
	Binary   string
	Settings netnsSettings
	Root     string
}

// NetnsReady reports that the netns runtime needs Linux.
func NetnsReady() error { return errNetnsLinux }

// BuildMuninn is not available off Linux.
func BuildMuninn(ctx context.Context, root, dir string) (string, error) { return "", errNetnsLinux }

// UpNetns is not available off Linux.
func UpNetns(ctx context.Context, env *NetnsEnv, api *API, t Topology, logf func(string, ...any)) (*Cluster, error) {
	return nil, errNetnsLinux
}
