"""Wukong: run virtual machines on KubeVirt from one ``Wukong`` resource."""

from wukong._lazy_kube import install as _install_lazy_kube

__version__ = "0.1.0"

# Before anything imports kubernetes_asyncio: load only the parts the operator uses.
_install_lazy_kube()
