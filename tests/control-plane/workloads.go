package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// kwokStages are KWOK's default node and pod stages plus two that make chosen images fail:
// tag `broken` never pulls (ImagePullBackOff), tag `crash` crash-loops.
//
//go:embed kwok-stages.yaml
var kwokStages []byte

// workloadControllers are the kube-controller-manager loops that turn workloads into pods and
// clean up after them. The namespace controller runs on its own (controllers.go) in every mode.
var workloadControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"garbage-collector-controller",
	"endpointslice-controller",
	"pod-garbage-collector-controller",
	"disruption-controller",
	"horizontal-pod-autoscaler-controller",
	// Lifts the not-ready taint the API server puts on every new node once KWOK reports it
	// Ready, as on a real cluster.
	"node-lifecycle-controller",
}

// kwokNodes is how many simulated nodes are registered; two lets a spread or a DaemonSet show
// more than one pod per rollout step.
const kwokNodes = 2

// startWorkloads runs the real kube-controller-manager (the loops above) and kube-scheduler in
// this process and KWOK as a child process, registers the simulated nodes and returns once
// they are Ready. stop ends KWOK.
func startWorkloads(ctx context.Context, dir, server, kwokBinary string, creds *credentials) (stop func(), err error) {
	adminKubeconfig := filepath.Join(dir, "components.kubeconfig")
	if err := writeKubeconfig(adminKubeconfig, server, creds); err != nil {
		return nil, err
	}
	if err := startControllerManager(ctx, adminKubeconfig); err != nil {
		return nil, err
	}
	if err := startScheduler(ctx, adminKubeconfig); err != nil {
		return nil, err
	}

	stagesFile := filepath.Join(dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesFile, kwokStages, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", stagesFile, err)
	}
	kwok := exec.Command(kwokBinary,
		"--kubeconfig="+adminKubeconfig,
		"--config="+stagesFile,
		"--manage-all-nodes=true",
		"--node-ip=127.0.0.1",
		"--cidr=10.244.0.1/16",
	)
	logFile, err := os.OpenFile(filepath.Join(dir, "kwok.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating kwok.log: %w", err)
	}
	kwok.Stdout, kwok.Stderr = logFile, logFile
	// A backstop for SIGKILL of this process; the normal paths call stop.
	kwok.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := kwok.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting KWOK %s: %w", kwokBinary, err)
	}
	stop = func() {
		_ = kwok.Process.Kill()
		_, _ = kwok.Process.Wait()
		logFile.Close()
	}

	if err := registerNodes(ctx, server, creds); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startControllerManager runs kube-controller-manager's own Run with the workload loops.
// Not through its cobra command: that installs a second signal handler (a panic in one
// process) and applies logging options the API server already applied.
func startControllerManager(ctx context.Context, kubeconfig string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("kube-controller-manager options: %w", err)
	}
	known := controllermanager.KnownControllers()
	disabled := controllermanager.ControllersDisabledByDefault()
	aliases := controllermanager.ControllerAliases()
	if err := parseFlags("kube-controller-manager", s.Flags(known, disabled, aliases).FlagSets, []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(workloadControllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		// KWOK's heartbeat stage reports every 20-45 s; the default 50 s grace is too close.
		"--node-monitor-grace-period=2m",
	}); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager feature gates: %w", err)
	}
	c, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	go func() {
		if err := controllermanager.Run(ctx, c.Complete()); err != nil && ctx.Err() == nil {
			fatalf("kube-controller-manager: %v", err)
		}
	}()
	return nil
}

// startScheduler runs kube-scheduler's Setup and Run, for the same reasons as above.
func startScheduler(ctx context.Context, kubeconfig string) error {
	opts := scheduleroptions.NewOptions()
	if err := parseFlags("kube-scheduler", opts.Flags.FlagSets, []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	}); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler feature gates: %w", err)
	}
	cc, sched, err := scheduler.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler setup: %w", err)
	}
	go func() {
		if err := scheduler.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			fatalf("kube-scheduler: %v", err)
		}
	}()
	return nil
}

func parseFlags(component string, sets map[string]*pflag.FlagSet, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	for _, set := range sets {
		fs.AddFlagSet(set)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", component, err)
	}
	return nil
}

func registerNodes(ctx context.Context, server string, creds *credentials) error {
	client, err := kubernetes.NewForConfig(&rest.Config{
		Host:            server,
		BearerToken:     creds.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: creds.caPEM},
	})
	if err != nil {
		return fmt.Errorf("node client: %w", err)
	}
	nodes := client.CoreV1().Nodes()
	for i := range kwokNodes {
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{
					"kwok.x-k8s.io/node":           "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
				Labels: map[string]string{
					"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
			},
		}
		if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("registering node %s: %w", node.Name, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := nodes.List(ctx, metav1.ListOptions{})
		if err == nil && readyNodes(list.Items) == kwokNodes {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("KWOK did not make %d nodes Ready within 2m (see kwok.log)", kwokNodes)
}

func readyNodes(nodes []v1.Node) int {
	n := 0
	for _, node := range nodes {
		for _, c := range node.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				n++
			}
		}
	}
	return n
}
