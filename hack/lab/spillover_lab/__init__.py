"""A local multi-cluster Kubernetes lab built from the real Go components, without Docker.

Each cluster is its own etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
on free loopback ports; every process is recorded by PID so `down` stops exactly what `up`
started.
"""
