"""Getting into a running VM from the command line: the serial console, VNC and forwarded
ports through virt-api's websocket subresources (as virtctl does), and the serial console's
log through the VM's pod (as `kubectl logs -c guest-console-log`). ssh and scp: `virtctl`.

The websockets go to the API server, which proxies them to virt-api (API aggregation), which
proxies them to virt-handler on the VM's node (or, for a port, dials the VM itself): the user
needs only their kubeconfig and `get` on `virtualmachineinstances/console` (`/vnc`,
`/portforward`) in `subresources.kubevirt.io`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp

from wukong.adapters.client import dial_options
from wukong.adapters.kube import api_path
from wukong.adapters.kubevirt import subresource_path
from wukong.api import names
from wukong.api.conditions import READY
from wukong.api.kinds import VMI
from wukong.api.objects import being_deleted
from wukong.console import guestlog
from wukong.console.connect import Target, connect, kubernetes_object
from wukong.console.errors import FAILED, OK, CliError, explain, server_words
from wukong.console.follow import wait_for
from wukong.console.invocation import Cluster, Console, typed
from wukong.console.screenshots import png_size
from wukong.console.status import RUNNING, condition, phase, vmi_runs
from wukong.console.viewers import viewer
from wukong.errors import ApiError, Broken, Forbidden, NotFound, ServerError

ESCAPE = b"\x1d"  # Ctrl-], virtctl's escape sequence
JsonObj = dict[str, Any]
PLAIN = "plain.kubevirt.io"  # virt-api's subprotocol: raw bytes in binary frames


def _path(target: Target, vmi: str, sub: str) -> str:
    return subresource_path(target.namespace, VMI.plural, vmi, sub)


def _url(target: Target, vmi: str, sub: str) -> str:
    return str(target.kube.api.configuration.host).rstrip("/") + _path(target, vmi, sub)


ON_ITS_WAY: Final = (  # phases that end in one of those by themselves
    "Pending",
    "Creating",
    "Starting",
    "Restarting",
    "Resuming",
    "Suspending",
)


def _not_running(name: str, namespace: str, cr: JsonObj | None) -> CliError:
    """Why there is no VM to connect to, and what to do about it."""
    now = phase(cr)
    if now == "Error":
        why = condition(cr or {}, READY).get("message") or "see why"
        describe = typed(f"describe {name}", namespace)
        return CliError(f"wukong {name} is in Error, not running: {why} ({describe})")
    if now == "Deleting":
        return CliError(f"wukong {name} is being deleted")
    return CliError(
        f"wukong {name} is {now}, not running: start it first ({typed(f'start {name}', namespace)})"
    )


async def guest_vmi(target: Target, name: str) -> JsonObj | None:
    """The Wukong's VMI, read with the user's own rights (`view` has `get` on it, through
    KubeVirt's `kubevirt.io:view`); None when there is none, or when the user may not read
    it (the Wukong's phase then speaks for it)."""
    vmis = api_path(VMI.group, VMI.version, VMI.plural, target.namespace)
    try:
        return kubernetes_object(await target.kube.get(f"{vmis}/{names.vm_name(name)}"), vmis)
    except (NotFound, Forbidden):
        return None


# Phases of a Wukong whose VM is being shut down, its VMI still running meanwhile.
SHUTTING_DOWN: Final = ("Stopping", "Deleting")


def runs_all_the_same(name: str, namespace: str, cr: JsonObj) -> str | None:
    """What to say, on stderr, of a Wukong whose phase is not Running while its VM runs
    (a data disk added later whose import failed: Error; a graceful stop under way:
    Stopping), before connecting to it all the same, as virtctl would; None: nothing to
    add (a VM on its way, which runs already)."""
    now = phase(cr)
    if now == "Error":
        why = condition(cr, READY).get("message") or "see why"
        describe = typed(f"describe {name}", namespace)
        return f"warning: wukong {name} is in Error: {why} ({describe}); its VM runs all the same"
    if now in SHUTTING_DOWN or being_deleted(cr):
        return f"warning: wukong {name} is shutting down ({now}): its VM runs until it stops"
    return None


async def _reachable(
    target: Target, name: str, cr: JsonObj, say: Callable[[str], None] | None
) -> str:
    """The name of the VMI of the Wukong `cr`, when it runs; else why not, in the Wukong's
    words. The Wukong's phase is not the last word: a Wukong in Error (a disk that failed to
    import after the VM started) or Stopping (the guest shutting down) may have a VM that
    runs, and virt-api serves it whatever the Wukong's phase, so the VMI is asked then
    (access audit, session 46: every access verb refused a running guest whose Wukong was
    in Error, and never asked virt-api). `say` hears why the phase is not Running."""
    if phase(cr) not in RUNNING:
        if not vmi_runs(await guest_vmi(target, name)):
            raise _not_running(name, target.namespace, cr)
        if say is not None and (note := runs_all_the_same(name, target.namespace, cr)):
            say(note)
    elif phase(cr) == "Suspended" and say is not None:
        # As virtctl vnc warns (templates.PrintWarningForPausedVMI); a paused guest answers
        # no console, display or port until it runs again.
        resume = typed(f"resume {name}", target.namespace)
        say(f"warning: {name} is paused: it answers once resumed ({resume})")
    return names.vm_name(name)


async def running_vmi(target: Target, name: str, say: Callable[[str], None] | None = None) -> str:
    """The name of the Wukong's running VMI, or a clear reason why there is none to connect
    to (`_reachable`); `say`: the verb's stderr, None when asked again for each connection."""
    return await _reachable(target, name, await target.wukong(name), say)


async def until_running(target: Target, io: Console, name: str, within: float) -> None:
    """Return once the Wukong's VM runs: at once when it does (whatever the Wukong's phase,
    as `running_vmi`); for a VM on its way (created, starting, restarting) after following
    the Wukong for up to `within` seconds, its progress on stderr, as `virtctl console`
    waits for its VMI; a clear reason when it will not run by itself (stopped, in error,
    being deleted, and no VM running)."""
    cr = await target.wukong(name)
    if (was := phase(cr)) in ON_ITS_WAY:
        if vmi_runs(await guest_vmi(target, name)):  # up before the Wukong says Running
            return
        io.say(f"waiting for {name} to run (phase {was}; Ctrl-C stops waiting)")

        def settled(now: JsonObj | None) -> JsonObj | None:
            return None if now is None or phase(now) in ON_ITS_WAY else now

        cr = await wait_for(
            target, name, settled, within=within, what=f"{name} to run", say=io.say, since=cr
        )
    await _reachable(target, name, cr, io.say)


async def _refusal(target: Target, vmi: str, sub: str) -> str | None:
    """The server's own words for a refused upgrade: the handshake error carries no body, so
    ask again without upgrading (virt-api validates the VMI before it upgrades)."""
    try:
        await target.kube.get(_path(target, vmi, sub))
    except ApiError as error:
        return server_words(error)
    return None


class LostCluster(CliError):
    """An API error while a connection opens (the Wukong or its VMI read again): the
    cluster cannot be reached (a restart, a load balancer's failover), or no longer lets the
    user in (401: an expired token; 403: rights revoked; 429, 5xx). It ends a port-forward,
    as kubectl's ends when it loses its connection to the API server; a refusal of one
    connection (the VM stopped, nothing listens on the guest's port) does not."""


@asynccontextmanager
async def open_stream(
    target: Target, name: str, sub: str
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A websocket to the running VM's `console`, `vnc` or `portforward/PORT/tcp`
    subresource; `LostCluster` when the Wukong or its VMI cannot be read."""
    what = f"port {sub.split('/')[1]}" if sub.startswith("portforward/") else f"the {sub}"
    try:
        vmi = await running_vmi(target, name)
    except ApiError as error:
        # Said here: a connection's handler runs in a task of its own, outside `connect`'s
        # block (asyncio printed a traceback per connection; CLI access audit, session 48).
        reason = explain(error, target.server)
        raise LostCluster(f"cannot open {what} of wukong {name}: {reason}") from error
    api = target.kube.api
    headers: dict[str, str] = {}
    await api.update_params_for_auth(headers, [], ["BearerToken"])
    session: aiohttp.ClientSession = api.rest_client.pool_manager
    try:
        ws = await session.ws_connect(
            _url(target, vmi, sub),
            headers=headers,
            protocols=(PLAIN,),
            heartbeat=30,
            **dial_options(api),
        )
    except aiohttp.WSServerHandshakeError as error:
        # A console or VNC is asked again for virt-api's words only after a validation
        # refusal (400, 409): a GET that passes validation connects to virt-handler, which
        # closes the session someone else has open (guest-access audit, session 41). A port
        # forward is no one's alone: its dial error (500) is asked too.
        again = error.status in (400, 409) or sub.startswith("portforward/")
        asked = await _refusal(target, vmi, sub) if again else None
        why = asked or f"{error.status} {error.message}"
        raise CliError(f"{what} of wukong {name} refused the connection: {why}") from error
    except aiohttp.ClientError as error:
        raise CliError(f"cannot open {what} of wukong {name}: {error}") from error
    try:
        yield ws
    finally:
        await ws.close()


# After the end of input, how long the guest may be quiet before its connection is closed.
# virt-api's portforward websocket cannot be half-closed as nc or kubectl's SPDY stream do:
# its plain.kubevirt.io stream is raw bytes in binary messages, and a Close frame ends both
# ways (virt-api closes the guest's connection as soon as either of its copies ends). So the
# end of input is not sent on: the answer is still copied until the guest's side closes or
# is quiet this long (as socat waits its `-t`, 0.5 s, after an end it could pass on), enough
# for `printf 'SSH-2.0-x\r\n' | wukong port-forward NAME 22 --stdio` (or `nc -N` to a
# forwarded port) to show what the guest says, and little for a pipe's command to wait.
# Each answer starts it again.
LINGER_SECONDS: Final = 2.0


# How a pump ended: the end of input (or the console's escape key) first; the guest's side
# first, with a Close frame saying 1000; the guest's side first any other way: the
# connection closed or reset without a Close frame (virt-api itself never sends one: it
# closes the connection when the guest's side ends), another close code, no pong.
Ended = Literal["input", "closed", "cut"]


async def pump(
    ws: aiohttp.ClientWebSocketResponse,
    read: Callable[[], asyncio.Future[bytes] | asyncio.Task[bytes]],
    write: Callable[[bytes], Awaitable[None]],
    *,
    escape: bytes | None = None,
    linger: float = 0.0,
) -> Ended:
    """Copy bytes to the guest and its answer back until end of input (and then `linger`
    seconds of quiet from the guest), the guest side closing, or (a person at the console)
    the `escape` key; how it ended (`Ended`). Never an escape for a protocol's bytes (VNC,
    a forwarded port): any byte can be 0x1d there. The guest side closing first is for the
    caller to judge: virt-handler gives a VMI's serial console to one connection and closes
    the one before when another comes (rest/console.go), and virtctl says so and fails; it
    ended here silently with 0 (guest-access audit, session 41)."""
    answered = asyncio.Event()  # the guest has said something since this was cleared
    ended: Ended = "input"

    async def upstream() -> None:
        while chunk := await read():
            if escape is not None and escape in chunk:
                before = chunk.split(escape, 1)[0]
                if before:
                    await ws.send_bytes(before)
                return
            await ws.send_bytes(chunk)
        if linger <= 0:
            return
        # The end of input: the guest's answer still comes back until its side closes (which
        # ends this) or it has been quiet `linger` seconds (LINGER_SECONDS says why).
        with suppress(TimeoutError):
            while True:
                answered.clear()
                await asyncio.wait_for(answered.wait(), linger)

    async def downstream() -> None:
        nonlocal ended
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                answered.set()
                data = message.data
                await write(data if isinstance(data, bytes) else data.encode())
            elif message.type is aiohttp.WSMsgType.CLOSE:
                ended = "closed" if message.data == aiohttp.WSCloseCode.OK else "cut"
                return
            elif message.type not in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                ended = "cut"  # CLOSED, CLOSING, ERROR: no Close frame, or a broken one
                return

    await first_to_end(upstream(), downstream())
    return ended


async def first_to_end(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the two directions of a stream until either ends; then (or when this is
    cancelled) the other is cancelled and awaited, and an error of the one that ended is
    raised."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


@asynccontextmanager
async def stdin_chunks(*, raw: bool = True) -> AsyncIterator[Callable[[], asyncio.Future[bytes]]]:
    """stdin as chunks; `raw`: a terminal in raw mode (keys go to the guest as typed, Ctrl-C
    too), restored on the way out. A file or /dev/null is read as it is, to its end (the
    event loop cannot wait on those: `wukong console NAME < /dev/null` was a traceback)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    saved = None
    if raw and os.isatty(fd):
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        for sig in RAW_ENDERS:
            loop.add_signal_handler(sig, end_restored, sig, fd, saved)
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        queue.put_nowait(data)
        if not data:
            loop.remove_reader(fd)

    def at_once() -> asyncio.Future[bytes]:
        done = loop.create_future()
        done.set_result(os.read(fd, 4096))
        return done

    try:
        loop.add_reader(fd, readable)
    except PermissionError:  # a file or /dev/null: epoll cannot wait for it, nor need to
        pollable = False
    else:
        pollable = True
    try:
        yield (lambda: asyncio.ensure_future(queue.get())) if pollable else at_once
    finally:
        if pollable:
            loop.remove_reader(fd)
        if saved is not None:
            import termios

            for sig in RAW_ENDERS:
                loop.remove_signal_handler(sig)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


RAW_ENDERS: Final = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end the process while the terminal is raw (Ctrl-C and Ctrl-\\ are keys for
the guest then): `kill`, a supervisor, a closed ssh session."""


def end_restored(sig: int, fd: int, saved: list[Any]) -> None:
    """Give the terminal its settings back, then end by `sig` as its default action would
    (the shell sees 128 + N). Ending without the first left the shell after it raw: no echo,
    no Enter."""
    import termios

    with suppress(OSError):  # a hung-up terminal takes no settings
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


async def console(cluster: Cluster, io: Console, name: str, *, within: float = 300) -> int:
    """`wukong console NAME`: the guest's serial console until Ctrl-]; a VM on its way to
    running is waited for (up to `within` seconds), so that `create` then `console` shows
    its boot."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await until_running(target, io, name, within)
        async with open_stream(target, name, "console") as ws:
            # virtctl v1.7's words (console.go); Ctrl+5 sends the same byte in most terminals.
            io.say(
                f"Successfully connected to {name} console. Press Ctrl+] or Ctrl+5 to exit console."
            )
            out = sys.stdout.buffer

            async def write(data: bytes) -> None:
                out.write(data)
                out.flush()

            async with stdin_chunks() as read:
                ended = await pump(ws, read, write, escape=ESCAPE)
            io.say("")
            if ended != "input":  # virtctl's words (console.go)
                raise CliError(
                    f"disconnected from the console of {name}: another user connected to it, "
                    "the VM stopped, or the network failed"
                )
            return OK


async def logs(
    cluster: Cluster,
    name: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
) -> int:
    """`wukong logs NAME`: the guest's serial console log, from the VM's virt-launcher pod
    (`-f`: until the VM stops or Ctrl-C)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        vmi_name, ns = names.vm_name(name), target.namespace
        vmis = api_path(VMI.group, VMI.version, VMI.plural, ns)
        try:
            vmi = kubernetes_object(await target.kube.get(f"{vmis}/{vmi_name}"), vmis)
        except NotFound:
            raise CliError(guestlog.no_vm(name, ns, phase(cr))) from None
        pods = api_path("", "v1", "pods", ns)
        found = await target.listed(pods, query={"labelSelector": guestlog.pod_selector(vmi)})
        pod = guestlog.launcher_pod(vmi, found)
        if pod is None:
            raise CliError(guestlog.no_pod(name, vmi_name))
        pod_name = str(pod["metadata"]["name"])
        if not guestlog.keeps_log(pod):
            raise CliError(guestlog.no_log(name, pod_name))
        query = guestlog.query(follow=follow, tail=tail, since=since, timestamps=timestamps)
        out = sys.stdout.buffer
        async with target.kube.stream(f"{pods}/{pod_name}/log", query) as body:
            try:
                async for chunk in body.iter_any():
                    out.write(chunk)
                    out.flush()
            except BrokenPipeError:  # `| head`: the reader has what it wanted
                # Python flushes stdout again at exit: point it at nothing first.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except Broken as error:
                # Cut mid-way (a proxy or an API server going away). Not taken up again on
                # our own: without timestamps a new request repeats or skips lines.
                again = typed(f"logs {name}{' -f' if follow else ''}", ns)
                raise CliError(
                    f"the connection broke while reading the log of {name} "
                    f"({error.cause}): `{again}` reads it again "
                    "(--since 1m: the last minute only)"
                ) from error
    return OK


class Forwarder:
    """A local port whose each connection goes to the VM's `sub` websocket (`vnc`,
    `portforward/22/tcp`), bytes copied both ways until the guest's side closes, or the
    client's has and the guest is quiet (`LINGER_SECONDS`). A refusal is said on stderr and
    ends that connection only; an API error (`LostCluster`) is said once and sets `lost`,
    for the command to end. `once`: one connection only, as `virtctl vnc` accepts one; the
    port stops listening as it comes, `ended` is set when it ends (`failed`: with an error).
    Closed (Ctrl-C), it stops listening and ends the connections still open."""

    def __init__(
        self,
        target: Target,
        io: Console,
        name: str,
        sub: str,
        *,
        once: bool = False,
        lost: asyncio.Event | None = None,
    ) -> None:
        self.target, self.io, self.name, self.sub = target, io, name, sub
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[Any]] = set()
        self.once, self.taken, self.failed = once, False, False
        self.ended = asyncio.Event()
        self.lost = asyncio.Event() if lost is None else lost

    async def listen(self, address: str, port: int) -> int:
        """Listen on `address`:`port` (0: a free port); the port it got."""
        self.server = await listen(self._connection, address, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.once:
            if self.taken:  # accepted with the first one, before the port stopped listening
                self.io.say(
                    f"refused another connection to the {self.sub} of {self.name}: one at a "
                    "time, as virtctl's (the newest would take the display over)"
                )
                writer.close()
                return
            self.taken = True
            if self.server is not None:
                self.server.close()  # no other connection: not meanwhile, not after
        connection = asyncio.current_task()
        assert connection is not None  # asyncio runs each handler as a task, awaited by none
        self.connections.add(connection)
        try:
            async with open_stream(self.target, self.name, self.sub) as ws:

                async def read() -> bytes:
                    return await reader.read(65536)

                async def write(data: bytes) -> None:
                    writer.write(data)
                    await writer.drain()  # a slow reader here slows the guest's stream

                # A client's end may be a half-close (`nc -N`): the answer still comes.
                chunks = lambda: asyncio.ensure_future(read())  # noqa: E731
                ended = await pump(ws, chunks, write, linger=LINGER_SECONDS)
            if ended == "cut" and self.once:
                # The display, cut under the viewer (virt-api restarting, a load balancer, a
                # second viewer taking it over): virtctl vnc fails with "websocket: close
                # 1006", and a script that looks at the exit code can tell it from the
                # user's own close. A forwarded port's end stays silent: virt-api ends it
                # the same way whether the guest's program closed it or the network did.
                raise CliError(
                    f"disconnected from the {self.sub.upper()} of {self.name}: another viewer "
                    "connected to it, the VM stopped, or the network failed"
                )
        except LostCluster as error:
            if not self.lost.is_set():  # once, for connections that open together
                self.io.say(f"error: {error.message}")
            self.lost.set()
            self.failed = True
        except CliError as error:
            self.io.say(f"error: {error.message}")
            self.failed = True
        except ConnectionError:
            # A reset (a client closing with bytes unread, or a broken websocket) ends the
            # connection as a close does: nothing to say, and no traceback from asyncio.
            pass
        except asyncio.CancelledError:
            # The listener is closing (Ctrl-C): the connection ends with it. Not raised on:
            # Python 3.11's streams ask the handler's task for its exception, and a cancelled
            # task answers that with a CancelledError of its own, printed as three chained
            # tracebacks on the way out (later versions check first: CPython gh-113538).
            pass
        finally:
            self.connections.discard(connection)
            writer.close()
            self.ended.set()

    async def close(self) -> None:
        """Stop listening, then end the connections still open, their websockets closed
        while the client they came through is still there (asyncio.run would cancel them
        only after it has gone). Not the server's wait_closed: from Python 3.12 it waits for
        the connections to end by themselves."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def listen(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    address: str,
    port: int,
) -> asyncio.Server:
    """A local listener, or one line saying why there cannot be one."""
    try:
        return await asyncio.start_server(handler, address, port)
    except OSError as error:  # the port is taken, the address is not this machine's
        raise cannot_listen(address, port, error) from None


def cannot_listen(address: str, port: int, error: OSError) -> CliError:
    """Why a local port cannot be had, in the errno's words (asyncio's own strerror repeats
    the address); an address that does not resolve in the resolver's (its error numbers are
    negative, EAI_*, and os.strerror called -2 "unknown error -2"), as virtctl's "can't
    resolve the address"."""
    if isinstance(error, socket.gaierror):
        why = (error.strerror or str(error)).lower()
        return CliError(f"cannot resolve {address}: {why}")
    reason = os.strerror(error.errno) if error.errno else str(error)
    return CliError(f"cannot listen on {address}:{port}: {reason.lower()}")


LOCALHOST: Final = "127.0.0.1"


async def vnc(
    cluster: Cluster,
    io: Console,
    name: str,
    *,
    port: int = 0,
    address: str = LOCALHOST,
    proxy_only: bool = False,
) -> int:
    """`wukong vnc NAME`: a local port for one connection to the VM's VNC, and a VNC viewer
    opened on it when one is installed, as `virtctl vnc` does (until the viewer is closed);
    else, or with `proxy_only`, the port for the user's own viewer (as `virtctl vnc
    --proxy-only`), until that connection ends.

    One connection, as virtctl accepts one: virt-handler gives a VMI's display to the newest
    connection and closes the one before, and the port asks no password, so a second
    connection (another user of the machine, anyone on the network with `--address
    0.0.0.0`) took the display over, a logged-in desktop maybe, and cut the owner's viewer
    off (access audit, session 46). For the same reason the port is on 127.0.0.1 without
    `proxy_only`, whatever `address` says, as virtctl's."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await running_vmi(target, name, io.say)
        if not proxy_only and address != LOCALHOST:
            io.say(
                f"--address is for --proxy-only, as virtctl's: the VNC of {name} listens on "
                f"{LOCALHOST}"
            )
            address = LOCALHOST
        async with Forwarder(target, io, name, "vnc", once=True) as forwarder:
            bound = await forwarder.listen(address, port)
            command = None if proxy_only else viewer(LOCALHOST, bound)
            if command is None:
                io.out(f'{{"port": {bound}}}')
                none = "" if proxy_only else "no remote-viewer or vncviewer on PATH; "
                io.say(
                    f"VNC of {name} on {address}:{bound}: connect a VNC viewer there "
                    f"({none}for one connection; Ctrl-C ends)"
                )
                await forwarder.ended.wait()
                return FAILED if forwarder.failed else OK
            program = Path(command[0]).name
            io.say(f"VNC of {name} on {address}:{bound}: opening {program}")
            opened = await asyncio.create_subprocess_exec(*command, stdin=subprocess.DEVNULL)
            if (code := await opened.wait()) != 0:
                raise CliError(f"{program} exited with code {code}")
            if forwarder.failed:  # said as it happened, while the viewer showed it
                return FAILED
    return OK


async def screenshot(cluster: Cluster, io: Console, name: str, file: str) -> int:
    """`wukong screenshot NAME`: the VM's display as a PNG (virt-api's `vnc/screenshot`, as
    `virtctl vnc screenshot`), written to `file` (`-`: stdout)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        vmi = await running_vmi(target, name, io.say)
        try:
            async with target.kube.stream(_path(target, vmi, "vnc/screenshot"), []) as body:
                data = await body.read()
        except Broken as error:  # cut mid-way: a proxy or an API server going away
            raise CliError(
                f"the connection broke while reading the screenshot of {name} "
                f"({error.cause}): run it again"
            ) from error
        except ServerError as error:
            if error.status == 0:  # the transport, not virt-api: said as any request's
                raise
            # virt-api answers any refusal of a screenshot with a 500 in plain text ("No
            # graphics devices are present."): KubeVirt's words, not the API server failing
            # (guest-access audit, session 41).
            raise CliError(
                f"KubeVirt cannot take a screenshot of {name}: {server_words(error)}"
            ) from None
    size = png_size(data)
    if size is None:
        raise CliError(f"the screenshot of {name} is not a PNG ({len(data)} bytes)")
    if file == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return OK
    try:
        await asyncio.to_thread(Path(file).write_bytes, data)
    except OSError as error:
        raise CliError(f"cannot write {file}: {(error.strerror or str(error)).lower()}") from None
    io.out(f"{file}: the screen of {name}, {size[0]}x{size[1]}")
    return OK
