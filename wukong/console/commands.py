"""The typer commands people type; each checks its flags and hands over to `flows`.

Results go to stdout, progress and errors to stderr. Exit codes: 0 done, 1 refused, failed
or not found, 2 a wrong command line. `flows` (and with it the Kubernetes client) is imported
inside each command that needs it, so that `wukong fsm`, `--help` and `version --client` stay
fast (tests/unit/cli/test_commands.py checks the last).
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from wukong.api.spec import DiskBus, RunStrategy
from wukong.console import create as creation
from wukong.console import values
from wukong.console.errors import CliError, usage
from wukong.console.options import (
    DETACH_WAIT,
    TYPER_STYLE,
    Context,
    DetachTimeout,
    DiskArg,
    DryRunOpt,
    Kubeconfig,
    KubectlCommand,
    NameArg,
    Namespace,
    OptionalNames,
    OutputOpt,
    Selector,
    Timeout,
    asker,
    cluster_from,
    complete_names,
    console,
    duration,
    fail,
    keep_list,
    output_option,
    read_text,
    run,
    targets,
    waiting,
    writing,
    wukong_name,
)
from wukong.console.output import DryRun, Output

app = typer.Typer(**TYPER_STYLE)


STATUS_EXAMPLES = """# every Wukong in the namespace, then one line per change
wukong status -w

# one Wukong in detail, or as YAML
wukong status web-1
wukong status web-1 -o yaml

# names of the Wukongs labelled tier=web in every namespace
wukong status -A -l tier=web -o name"""


@app.command(cls=KubectlCommand, epilog=STATUS_EXAMPLES)
def status(
    name: Annotated[
        str | None,
        typer.Argument(
            help="one Wukong in detail",
            metavar="NAME",
            show_default=False,
            parser=wukong_name,
            autocompletion=complete_names,
        ),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="every namespace")
    ] = False,
    selector: Selector = None,
    output: Annotated[
        Output | None, output_option(*Output, help_text="json, yaml, wide or name")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="after the table, print each change")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=duration,
            metavar="DURATION",
            help="with -w: stop watching after this long (default: until Ctrl-C)",
            show_default=False,
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """A table of Wukongs, or one Wukong's disks, conditions and history."""
    from wukong.console import flows

    if name is not None and all_namespaces:
        fail(usage("a name and --all-namespaces do not go together"))
    if name is not None and selector is not None:
        fail(usage("a NAME and -l/--selector do not go together"))
    if timeout is not None and not watch:
        fail(usage("--timeout only bounds -w/--watch"))
    cluster = cluster_from(kubeconfig, context, namespace)
    following = (timeout if timeout is not None else float("inf")) if watch else None
    work = flows.status(
        cluster,
        console(),
        name,
        all_namespaces=all_namespaces,
        output=output,
        selector=selector,
        watch=following,
    )
    run(work, writes=False)


@app.command(cls=KubectlCommand, epilog="wukong describe web-1 -n demo")
def describe(
    name: NameArg,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Status plus one timeline of the Events of the Wukong, its VM, VMI and disks."""
    from wukong.console import flows

    run(flows.describe(cluster_from(kubeconfig, context, namespace), console(), name), writes=False)


CREATE_EXAMPLES = """# Fedora: 2 vCPUs, 4Gi, a 20Gi system disk and your SSH key; wait until it runs
wukong create web-1 --image docker://quay.io/containerdisks/fedora:40 \\
  --cpu 2 --memory 4Gi --size 20Gi --ssh-key-file ~/.ssh/id_ed25519.pub --wait

# sized by an instancetype, with a blank data disk, an existing NAD and SSH keys
wukong create db-1 --image docker://quay.io/containerdisks/fedora:40 \\
  --instancetype u1.medium --disk data=100Gi --network storage=storage-net \\
  --ssh-key-secret my-keys

# a VLAN on a node bridge (as the administrator's policy allows), printed, not created
wukong create web-2 --bridge lan=br-lan:100 --dry-run=client -o yaml

# a copy of a golden image: CDI clones the PVC golden-images/fedora-40 into the system disk
wukong create web-3 --clone-from golden-images/fedora-40 --size 20Gi

# the same from a CDI DataSource (what a DataImportCron keeps fresh)
wukong create web-4 --data-source kubevirt-os-images/fedora --size 30Gi

# what no flag sets (a disk's storageClassName, accessMode, bus; cloudInit networkData; an
# SSH key's propagation; placement; hotplug; a network's mtu): print, edit, kubectl apply -f
wukong create web-5 --image docker://quay.io/containerdisks/fedora:40 --dry-run=client -o yaml"""


@app.command(cls=KubectlCommand, epilog=CREATE_EXAMPLES)
def create(
    name: Annotated[
        str,
        typer.Argument(
            help="name of the new Wukong", show_default=False, metavar="NAME", parser=wukong_name
        ),
    ],
    image: Annotated[
        str | None,
        typer.Option("--image", help="system disk from docker://… or http(s)://…", metavar="URL"),
    ] = None,
    clone_from: Annotated[
        str | None,
        typer.Option(
            "--clone-from",
            help="system disk cloned from an existing PVC: NAME, or NAMESPACE/NAME",
            metavar="PVC",
        ),
    ] = None,
    data_source: Annotated[
        str | None,
        typer.Option(
            "--data-source",
            help="system disk cloned from what a CDI DataSource points to: [NAMESPACE/]NAME",
            metavar="DATASOURCE",
        ),
    ] = None,
    size: Annotated[
        str, typer.Option("--size", help="system disk size", metavar="SIZE")
    ] = creation.DEFAULT_SIZE,
    cpu: Annotated[
        int | None,
        typer.Option(
            "--cpu", help="vCPUs (default 1)", metavar="N", show_default=False, parser=values.vcpus
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="guest memory (default 1Gi)", metavar="SIZE"),
    ] = None,
    instancetype: Annotated[
        str | None,
        typer.Option(
            "--instancetype",
            help="instancetype instead of --cpu/--memory (KIND/NAME: a namespaced one)",
            metavar="NAME",
        ),
    ] = None,
    preference: Annotated[
        str | None,
        typer.Option(
            "--preference", help="preference (KIND/NAME: a namespaced one)", metavar="NAME"
        ),
    ] = None,
    disk: Annotated[
        list[str] | None,
        typer.Option("--disk", help="a blank data disk (repeat)", metavar="NAME=SIZE"),
    ] = None,
    network: Annotated[
        list[str] | None,
        typer.Option(
            "--network", help="a secondary network on an existing NAD (repeat)", metavar="NAME=NAD"
        ),
    ] = None,
    bridge: Annotated[
        list[str] | None,
        typer.Option(
            "--bridge",
            help="a secondary network on a node bridge, VLAN optional; the operator makes its "
            "NAD if the administrator's policy allows (repeat)",
            metavar="NAME=BRIDGE[:VLAN]",
        ),
    ] = None,
    ssh_key_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh-key-secret", help="a Secret of SSH public keys (repeat)", metavar="SECRET"
        ),
    ] = None,
    ssh_key_file: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh-key-file",
            help="an SSH public key file for the image's default user, via cloud-init (repeat)",
            metavar="FILE",
        ),
    ] = None,
    user_data: Annotated[
        str | None,
        typer.Option(
            "--user-data", help="cloud-init user data from FILE (- : stdin)", metavar="FILE"
        ),
    ] = None,
    user_data_secret: Annotated[
        str | None,
        typer.Option(
            "--user-data-secret",
            help="cloud-init user data from a Secret's userdata key (any size)",
            metavar="SECRET",
        ),
    ] = None,
    run_strategy: Annotated[
        RunStrategy | None,
        typer.Option(
            "--run-strategy", help="Always, RerunOnFailure, Manual or Halted", metavar="STRATEGY"
        ),
    ] = None,
    stopped: Annotated[
        bool, typer.Option("--stopped", help="create it without starting it")
    ] = False,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="a label (repeat)", metavar="KEY=VALUE")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until it runs (or, --stopped, is Stopped)")
    ] = False,
    timeout: Timeout = None,
    dry_run: DryRunOpt = DryRun.NONE,
    output: Annotated[
        Output | None,
        output_option(
            Output.JSON,
            Output.YAML,
            Output.NAME,
            help_text="json, yaml or name: the Wukong made (--dry-run=client: as it would be)",
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Create a Wukong from flags; --dry-run=client -o yaml prints its manifest instead."""
    from wukong.console import flows

    wanted = creation.Wanted(
        name=name,
        image=image,
        clone_from=clone_from,
        data_source=data_source,
        size=size,
        cpu=cpu,
        memory=memory,
        instancetype=instancetype,
        preference=preference,
        disks=disk or (),
        networks=network or (),
        bridges=bridge or (),
        ssh_keys=ssh_key_secret or (),
        user_data=None if user_data is None else read_text(user_data, "--user-data"),
        user_data_secret=user_data_secret,
        ssh_public_keys=[read_text(path, "--ssh-key-file") for path in ssh_key_file or ()],
        run_strategy=run_strategy,
        stopped=stopped,
        labels=label or (),
    )
    cluster = cluster_from(kubeconfig, context, namespace)
    how = writing(dry_run, output, prints_result=True)
    work = flows.create(cluster, console(), wanted, wait=waiting(wait, timeout), writing=how)
    run(work)


RESIZE_EXAMPLES = """# more vCPUs and memory: live where hot-plug is on, else at the next restart
wukong resize web-1 --cpu 4 --memory 8Gi

# grow a disk and wait until the volume has its new size
wukong resize web-1 --disk data=200Gi --wait"""


@app.command(cls=KubectlCommand, epilog=RESIZE_EXAMPLES)
def resize(
    name: NameArg,
    cpu: Annotated[
        int | None, typer.Option("--cpu", help="vCPUs", metavar="N", parser=values.vcpus)
    ] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="guest memory, e.g. 8Gi", metavar="SIZE")
    ] = None,
    disk: Annotated[
        list[str] | None,
        typer.Option(
            "--disk", help="a disk's new size; disks only grow (repeat)", metavar="DISK=SIZE"
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="wait until it is in effect (or waits for a restart)"),
    ] = False,
    timeout: Timeout = None,
    dry_run: DryRunOpt = DryRun.NONE,
    output: OutputOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Change vCPUs or memory, grow disks; says if it applies live or at the next restart."""
    from wukong.console import flows
    from wukong.console.resize import Resize

    try:
        wanted = Resize.from_flags(cpu, memory, disk or ())
    except CliError as error:
        fail(error)
    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.resize(
        cluster, console(), name, wanted, wait=waiting(wait, timeout),
        writing=writing(dry_run, output),
    )  # fmt: skip
    run(work)


ATTACH_EXAMPLES = """# a blank 10Gi disk, hot-plugged if web-1 runs; wait until it is plugged
wukong attach web-1 data --size 10Gi --wait

# a disk imported from a container image (virtctl's name works too)
wukong addvolume web-1 tools --size 2Gi --image docker://quay.io/org/tools:1

# a copy of another namespace's PVC (CDI clones it)
wukong attach web-1 dataset --size 50Gi --clone-from datasets/train-2026"""


def attach(
    name: NameArg,
    disk: DiskArg,
    size: Annotated[
        str, typer.Option("--size", help="size, e.g. 10Gi", show_default=False, metavar="SIZE")
    ],
    image: Annotated[
        str | None,
        typer.Option("--image", help="docker://… or http(s)://… to import", metavar="URL"),
    ] = None,
    clone_from: Annotated[
        str | None,
        typer.Option(
            "--clone-from", help="an existing PVC to copy: NAME, or NAMESPACE/NAME", metavar="PVC"
        ),
    ] = None,
    data_source: Annotated[
        str | None,
        typer.Option(
            "--data-source",
            help="a CDI DataSource to copy: [NAMESPACE/]NAME",
            metavar="DATASOURCE",
        ),
    ] = None,
    bus: Annotated[
        DiskBus | None,
        typer.Option("--bus", help="virtio or scsi (default: virtio)", metavar="BUS"),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until the disk is plugged (or provisioned)")
    ] = False,
    timeout: Timeout = None,
    dry_run: DryRunOpt = DryRun.NONE,
    output: OutputOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Add a disk; a running VM gets it hot-plugged."""
    from wukong.console import flows

    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.attach(
        cluster,
        console(),
        name,
        disk,
        size=size,
        image=image,
        clone_from=clone_from,
        data_source=data_source,
        bus=bus,
        wait=waiting(wait, timeout),
        writing=writing(dry_run, output),
    )
    run(work)


DETACH_EXAMPLES = """# unplug data and keep its PVC; wait until it is gone from web-1
wukong detach web-1 data --keep-data --wait

# virtctl's name for the same
wukong removevolume web-1 data"""


def detach(
    name: NameArg,
    disk: DiskArg,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="keep the disk's PVC")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="skip the check that the guest no longer uses it")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="wait until the disk has left the Wukong (up to 10m: an unmounted disk "
            "waits for a guest report made after the detach, which KubeVirt refreshes "
            "every 5m)",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before deleting the PVC")
    ] = False,
    timeout: DetachTimeout = None,
    dry_run: DryRunOpt = DryRun.NONE,
    output: OutputOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Remove a disk (never the system disk); its PVC is deleted unless --keep-data (asks
    first)."""
    from wukong.console import flows

    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.detach(
        cluster,
        console(),
        name,
        disk,
        keep_data=keep_data,
        force=force,
        wait=waiting(wait, timeout, DETACH_WAIT),
        writing=writing(dry_run, output),
        ask=lambda who: asker(yes, who),
    )
    run(work)


for _name, _function, _examples_text, _alias_of in (
    ("attach", attach, ATTACH_EXAMPLES, None),
    ("addvolume", attach, ATTACH_EXAMPLES, "attach"),
    ("detach", detach, DETACH_EXAMPLES, None),
    ("removevolume", detach, DETACH_EXAMPLES, "detach"),
):
    _help = inspect.getdoc(_function) or ""
    if _alias_of:
        _help += f" Alias of {_alias_of} (virtctl's name)."
    app.command(name=_name, help=_help, epilog=_examples_text, cls=KubectlCommand)(_function)


DELETE_EXAMPLES = """# show the plan, ask, delete; keep the disk named data
wukong delete web-1 --keep data

# every Wukong labelled tier=test, without asking, and wait until they are gone
wukong delete -l tier=test --yes --wait

# print only what was deleted, as kubectl delete -o name (the plan goes to stderr)
wukong delete -l tier=test --yes -o name

# what would happen, checked by the API server, nothing deleted
wukong delete web-1 --dry-run=server"""


@app.command(cls=KubectlCommand, epilog=DELETE_EXAMPLES)
def delete(
    name: OptionalNames = None,
    selector: Selector = None,
    keep_disks: Annotated[bool, typer.Option("--keep-disks", help="keep every disk")] = False,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="keep this disk (repeat, or a,b)", metavar="DISK"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="no graceful stop; release at once")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="follow the teardown until gone")] = False,
    timeout: Timeout = None,
    dry_run: DryRunOpt = DryRun.NONE,
    output: Annotated[
        Output | None,
        output_option(
            Output.JSON,
            Output.YAML,
            Output.NAME,
            help_text="name: each Wukong deleted, as kubectl delete -o name (the plan goes "
            "to stderr); json or yaml: with --dry-run=client, the patches",
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Delete a Wukong: shows what goes and what stays, then asks."""
    from wukong.console import flows

    names = targets(name, selector)
    kept = keep_list(keep)
    if keep_disks and kept:
        fail(usage("--keep-disks keeps every disk: drop --keep"))
    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.delete(
        cluster,
        console(),
        names,
        keep_all=keep_disks,
        keep=kept,
        force=force,
        ask=lambda who: asker(yes, who),
        wait=waiting(wait, timeout),
        selector=selector,
        writing=writing(dry_run, output, names=True),
    )
    run(work)


@app.command(cls=KubectlCommand, epilog="wukong version\nwukong version --client -o json")
def version(
    client: Annotated[
        bool, typer.Option("--client", help="only this CLI's version; no request")
    ] = False,
    output: Annotated[
        Output | None, output_option(Output.JSON, Output.YAML, help_text="json or yaml")
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """The CLI's version and the operator's (from its Deployment, where you may read it)."""
    from wukong.console.version import version as versions

    cluster = cluster_from(kubeconfig, context, None)
    run(versions(cluster, console(), client, output), writes=False)


def _completion_help() -> str:
    return """# bash, for this shell, then for good
source <(wukong completion bash)
wukong completion bash > ~/.local/share/bash-completion/completions/wukong

# zsh
wukong completion zsh > "${fpath[1]}/_wukong"

# kubectl wukong <TAB> (kubectl >= 1.26) needs no script: kubectl runs
# kubectl_complete-wukong, installed beside kubectl-wukong"""


@app.command(cls=KubectlCommand, epilog=_completion_help())
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell", metavar="SHELL")],
) -> None:
    """Print the shell completion script for `wukong` (and `kubectl-wukong` when called by
    that name): commands, flags and the names of the namespace's Wukongs."""
    from wukong.console.options import completion_script

    typer.echo(completion_script(shell), nl=False)
