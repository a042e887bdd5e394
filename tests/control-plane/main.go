// Command control-plane runs a real Kubernetes control plane for tests: embedded etcd plus
// the upstream kube-apiserver, in one process, with all state under one directory.
//
// It writes <dir>/etcd-url (etcd's client URL) once etcd is up, and <dir>/kubeconfig
// (contexts "admin", current, and "dev") only after /readyz answers, so callers wait for
// that file to appear. The namespace controller always runs.
// With --kwok it also runs the workload controllers of kube-controller-manager and
// kube-scheduler (in this process, see workloads.go) and KWOK (a child process) as simulated
// nodes, and writes the kubeconfig only once those nodes are Ready; pods then really get
// scheduled and become Running and Ready. ServiceAccounts are only those the caller creates.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "", "state directory (etcd data, keys, kubeconfig); created if missing")
	exitWithParent := flag.Bool("exit-with-parent", false, "exit when the parent process dies, so test runs never leak servers")
	ephemeral := flag.Bool("ephemeral", false, "remove --dir on exit (etcd preallocates 64 MiB WAL files per run)")
	flag.StringVar(&kwokBinary, "kwok", "", "run workloads: kube-controller-manager's workload controllers, kube-scheduler, and this KWOK binary as nodes and kubelets")
	flag.Func("apiserver-arg", "one more kube-apiserver flag, e.g. --watch-cache=false (repeatable; later ones win)", func(arg string) error {
		extraAPIServerArgs = append(extraAPIServerArgs, arg)
		return nil
	})
	flag.Parse()
	// Our stdout/stderr are usually pipes to the test process. Once it exits, the next log
	// line would kill us with SIGPIPE before the --ephemeral cleanup runs (leaking ~120 MiB
	// of etcd WAL per run); asking for SIGPIPE makes such writes fail with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	if *dir == "" {
		fatalf("--dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatalf("resolving --dir %q: %v", *dir, err)
	}
	cleanup := func() {}
	if *ephemeral {
		cleanup = func() { os.RemoveAll(abs) }
	}
	err = run(abs, *exitWithParent, cleanup)
	cleanup()
	if err != nil {
		fatalf("%v", err)
	}
}

// kwokBinary is --kwok; stopWorkloads ends KWOK on every exit path, os.Exit included.
var (
	kwokBinary         string
	extraAPIServerArgs []string
	stopWorkloads      = func() {}
)

func run(dir string, exitWithParent bool, cleanup func()) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	// A stale kubeconfig from an earlier run would point callers at a dead port.
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.Remove(kubeconfigPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing stale %s: %w", kubeconfigPath, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o600); err != nil {
		return fmt.Errorf("writing pid file in %s: %w", dir, err)
	}
	if exitWithParent {
		go watchParent(cleanup)
	}

	creds, err := ensureCredentials(dir)
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdServer, etcdURL, err := startEtcd(filepath.Join(dir, "etcd"), ports[0], ports[1])
	if err != nil {
		return err
	}
	defer etcdServer.Close()
	// Fault tests talk to etcd directly (its gRPC gateway: read the revision, compact).
	if err := os.WriteFile(filepath.Join(dir, "etcd-url"), []byte(etcdURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing etcd-url in %s: %w", dir, err)
	}

	// kube-apiserver installs its own handler too; ours bounds how long its drain may take.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	apiErr := make(chan error, 1)
	go func() { apiErr <- runAPIServer(dir, creds, etcdURL, ports[2]) }()

	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := waitReady(server, creds, apiErr, 3*time.Minute); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startNamespaceController(ctx, server, creds); err != nil {
		return err
	}
	if kwokBinary != "" {
		stopKwok, err := startWorkloads(ctx, dir, server, kwokBinary, creds)
		if err != nil {
			return err
		}
		defer stopKwok()
		stopWorkloads = stopKwok
	}
	if err := writeKubeconfig(kubeconfigPath, server, creds); err != nil {
		return err
	}
	fmt.Printf("control-plane: ready at %s, kubeconfig %s\n", server, kubeconfigPath)

	select {
	case err := <-apiErr:
		return err
	case err := <-etcdServer.Err():
		return fmt.Errorf("etcd stopped: %w", err)
	case sig := <-signals:
		// The apiserver stops listening at once but can wait a long time for open watches.
		cancel()
		select {
		case <-apiErr:
		case <-time.After(5 * time.Second):
			fmt.Fprintf(os.Stderr, "control-plane: kube-apiserver still draining 5s after %v; exiting\n", sig)
		}
		return nil
	}
}

// watchParent polls instead of using PR_SET_PDEATHSIG because that signal fires when the
// parent *thread* exits, and test harnesses spawn from short-lived per-test threads.
func watchParent(cleanup func()) {
	parent := os.Getppid()
	for {
		time.Sleep(500 * time.Millisecond)
		if os.Getppid() != parent {
			fmt.Fprintf(os.Stderr, "control-plane: parent %d exited, shutting down\n", parent)
			stopWorkloads()
			cleanup()
			os.Exit(0)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "control-plane: "+format+"\n", args...)
	os.Exit(1)
}
