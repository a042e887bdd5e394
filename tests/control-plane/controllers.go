package main

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	namespacecontroller "k8s.io/kubernetes/pkg/controller/namespace"
)

// startNamespaceController runs the one controller-manager loop tests depend on: without it a
// deleted namespace stays Terminating forever and its objects are never removed.
func startNamespaceController(ctx context.Context, server string, creds *credentials) error {
	cfg := &rest.Config{
		Host:            server,
		BearerToken:     creds.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.caPEM},
		// Same reasoning as kube-controller-manager: namespace cleanup makes many small calls.
		QPS:   100,
		Burst: 1000,
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("namespace controller client: %w", err)
	}
	metadataClient, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("namespace controller metadata client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	controller := namespacecontroller.NewNamespaceController(
		ctx,
		client,
		metadataClient,
		client.Discovery().ServerPreferredNamespacedResources,
		factory.Core().V1().Namespaces(),
		5*time.Minute,
		v1.FinalizerKubernetes,
	)
	factory.Start(ctx.Done())
	go controller.Run(ctx, 5)
	return nil
}
