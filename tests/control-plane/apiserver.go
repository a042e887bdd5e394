package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func runAPIServer(dir string, creds *credentials, etcdURL string, port int) error {
	cmd := app.NewAPIServerCommand()
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + creds.servingCertFile,
		"--tls-private-key-file=" + creds.servingKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + creds.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + creds.saKeyFile,
		"--service-account-signing-key-file=" + creds.saKeyFile,
		// The ServiceAccount admission plugin needs the controller-manager's token controller.
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=0",
	}
	// cobra's flag parsing lets a later repetition override an earlier one.
	cmd.SetArgs(append(args, extraAPIServerArgs...))
	// Execute returns nil after a graceful shutdown on SIGTERM/SIGINT.
	if err := cmd.Execute(); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// waitReady polls /readyz with the cluster CA; readyz is readable anonymously under RBAC.
func waitReady(server string, creds *credentials, apiErr <-chan error, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(creds.caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case err := <-apiErr:
			return err
		default:
		}
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s/readyz not ok after %s (last: %s)", server, timeout, last)
}
