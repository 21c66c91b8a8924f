// Package configtest checks that hack/kind's cluster configurations decode with kind's own
// config types (sigs.k8s.io/kind/pkg/apis/config/v1alpha4), strictly: an unknown or misspelt
// field fails here rather than on a user's machine, since CI has no Docker to run kind.
package configtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func configs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kind configurations in hack/kind (%v)", err)
	}
	return files
}

func decode(t *testing.T, file string) v1alpha4.Cluster {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cluster); err != nil {
		t.Fatalf("%s does not decode as a kind Cluster: %v", file, err)
	}
	return cluster
}

func TestEveryConfigDecodesStrictlyAsAKindCluster(t *testing.T) {
	for _, file := range configs(t) {
		cluster := decode(t, file)
		if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" {
			t.Errorf("%s: kind %q apiVersion %q, want Cluster kind.x-k8s.io/v1alpha4", file, cluster.Kind, cluster.APIVersion)
		}
		v1alpha4.SetDefaultsCluster(&cluster)
		planes := 0
		for _, node := range cluster.Nodes {
			switch node.Role {
			case v1alpha4.ControlPlaneRole:
				planes++
			case v1alpha4.WorkerRole:
			default:
				t.Errorf("%s: node role %q is neither control-plane nor worker", file, node.Role)
			}
		}
		if planes != 1 {
			t.Errorf("%s: %d control-plane nodes, want 1", file, planes)
		}
	}
}

func TestClustersHaveDistinctNamesAndNetworks(t *testing.T) {
	names := map[string]string{}
	pods := map[string]string{}
	for _, file := range configs(t) {
		cluster := decode(t, file)
		base := strings.TrimSuffix(filepath.Base(file), ".yaml")
		if cluster.Name != "spillover-"+base {
			t.Errorf("%s: name %q, want spillover-%s (hack/kind/up names clusters after their file)", file, cluster.Name, base)
		}
		if other, ok := names[cluster.Name]; ok {
			t.Errorf("%s and %s are both named %s", file, other, cluster.Name)
		}
		names[cluster.Name] = file
		subnet := cluster.Networking.PodSubnet
		if subnet == "" {
			t.Errorf("%s: no podSubnet: peers and home need distinct pod networks", file)
		}
		if other, ok := pods[subnet]; ok {
			t.Errorf("%s and %s share the pod subnet %s", file, other, subnet)
		}
		pods[subnet] = file
	}
}
