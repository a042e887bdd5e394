package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// credentials are generated on first start and reused when a state directory is restarted,
// so kubeconfigs and issued ServiceAccount tokens stay valid across restarts.
type credentials struct {
	caPEM           []byte
	servingCertFile string
	servingKeyFile  string
	saKeyFile       string
	tokenFile       string
	adminToken      string
	devToken        string
}

func ensureCredentials(dir string) (*credentials, error) {
	c := &credentials{
		servingCertFile: filepath.Join(dir, "serving.crt"),
		servingKeyFile:  filepath.Join(dir, "serving.key"),
		saKeyFile:       filepath.Join(dir, "sa.key"),
		tokenFile:       filepath.Join(dir, "tokens.csv"),
	}
	caFile := filepath.Join(dir, "ca.crt")
	if !exists(caFile) || !exists(c.servingCertFile) || !exists(c.servingKeyFile) {
		if err := writeServingPKI(caFile, c.servingCertFile, c.servingKeyFile); err != nil {
			return nil, err
		}
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", caFile, err)
	}
	c.caPEM = caPEM

	if !exists(c.saKeyFile) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generating ServiceAccount signing key: %w", err)
		}
		if err := writePEM(c.saKeyFile, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)); err != nil {
			return nil, err
		}
	}

	if !exists(c.tokenFile) {
		admin, dev := randomToken(), randomToken()
		// Format: token,user,uid,"group1,group2"
		csv := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,dev,dev\n", admin, dev)
		if err := os.WriteFile(c.tokenFile, []byte(csv), 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", c.tokenFile, err)
		}
	}
	if err := c.readTokens(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *credentials) readTokens() error {
	data, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.tokenFile, err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		fields := strings.SplitN(line, ",", 3)
		if len(fields) < 2 {
			continue
		}
		switch fields[1] {
		case "admin":
			c.adminToken = fields[0]
		case "dev":
			c.devToken = fields[0]
		}
	}
	if c.adminToken == "" || c.devToken == "" {
		return errors.New("token file " + c.tokenFile + " lacks the admin or dev user")
	}
	return nil
}

// writeServingPKI makes a separate CA and leaf because rustls refuses a CA certificate
// presented as the server's end-entity certificate.
func writeServingPKI(caFile, certFile, keyFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubectl-gitops test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parsing CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating serving key: %w", err)
	}
	leafTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTemplate, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding serving key: %w", err)
	}
	if err := writePEM(caFile, "CERTIFICATE", caDER); err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", leafDER); err != nil {
		return err
	}
	return writePEM(keyFile, "EC PRIVATE KEY", keyDER)
}

func writeKubeconfig(path, server string, c *credentials) error {
	ca := base64.StdEncoding.EncodeToString(c.caPEM)
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: control-plane
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
- name: dev
  user:
    token: %s
contexts:
- name: admin
  context:
    cluster: control-plane
    user: admin
    namespace: default
- name: dev
  context:
    cluster: control-plane
    user: dev
    namespace: default
current-context: admin
`, server, ca, c.adminToken, c.devToken)
	// Write then rename: callers poll for this file and must never read it half-written.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(kubeconfig), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	return nil
}

func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
