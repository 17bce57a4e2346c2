"""Command lines of etcd, kube-apiserver and kube-controller-manager, after envtest's defaults."""

from __future__ import annotations

from pathlib import Path

from wukong.testing._certs import Pki

# The names kube-controller-manager v1.37 lists in `--help` (the old aliases also still work).
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    # PVCs get the kubernetes.io/pvc-protection finalizer at admission; only this removes it.
    "persistentvolumeclaim-protection-controller",
    # Every namespace's `default` ServiceAccount, which the ServiceAccount admission plugin
    # needs to admit a pod (KubeVirt's virt-launcher and hot-plug pods).
    "serviceaccount-controller",
    # Kubernetes' view, edit and admin roles take in every ClusterRole labelled
    # aggregate-to-*: ours (manifests/rbac/user-roles.yaml) and KubeVirt's (kubevirt.io:edit,
    # with console, port-forward, soft-reboot). Without it, `edit` granted nothing here.
    "clusterrole-aggregation-controller",
)
# ResourceQuota status (hard, used): quota admission refuses nothing until it is there, so
# without it a quota did nothing on the local cluster (the demo, the trouble tests).
QUOTA_CONTROLLER = "resourcequota-controller"


def etcd_args(binary: Path, data: Path, port: int, peer: int) -> list[str]:
    """A single-member etcd on loopback that skips fsync (test data is disposable)."""
    client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    return [
        str(binary),
        f"--data-dir={data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--unsafe-no-fsync=true",
    ]


def apiserver_args(binary: Path, work: Path, pki: Pki, port: int, etcd_port: int) -> list[str]:
    """kube-apiserver on 127.0.0.1:port with RBAC, client-cert admin, SA tokens and aggregation."""
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={work / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving.cert}",
        f"--tls-private-key-file={pki.serving.key}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        # Explicit: with no default route the apiserver cannot pick one and refuses to start.
        "--advertise-address=127.0.0.1",
        # A loopback advertise address fails the `kubernetes` endpoints validation otherwise.
        "--endpoint-reconciler-type=none",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true",
        "--authorization-mode=RBAC",
        # On in OpenShift by default: an ownerReference with blockOwnerDeletion needs `update`
        # on the owner's `<plural>/finalizers`. Without it here, the operator's missing
        # datavolumes/finalizers went unseen (source audit, session 48).
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        # The ServiceAccount admission plugin stays on: it mounts the token volume into pods, and
        # KubeVirt counts on it (an attachment pod has its PVCs "+2: empty dir and token").
        f"--client-ca-file={pki.client_ca}",
        f"--service-account-issuer=https://127.0.0.1:{port}/",
        f"--service-account-key-file={pki.service_account.cert}",
        f"--service-account-signing-key-file={pki.service_account.key}",
        # The aggregation layer: lets a test register an APIService backed by a local server.
        f"--requestheader-client-ca-file={pki.front_proxy_ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
    ]


def controller_manager_args(binary: Path, kubeconfig: Path, *, quotas: bool = True) -> list[str]:
    """Only the controllers in CONTROLLERS (and, with `quotas`, the resource-quota one); no
    leader election, no serving port."""
    controllers = [*CONTROLLERS, QUOTA_CONTROLLER] if quotas else list(CONTROLLERS)
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--controllers={','.join(controllers)}",
        "--leader-elect=false",
        "--secure-port=0",
        # One identity for every controller: no serviceaccount-token controller runs to mint more.
        "--use-service-account-credentials=false",
    ]
