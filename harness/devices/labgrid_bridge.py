"""The harness's line to a labgrid coordinator: one small process run by the Python that has
labgrid installed (it may be another virtualenv than the harness's: labgrid's
`pyserial-labgrid` and the harness's `pyserial` both install the module `serial`).

Stdlib + labgrid only; it never imports the harness. One JSON request per stdin line, one
JSON answer per stdout line:

    {"op": "hello"}                            -> {"user": "host/user", "labgrid": "26.0.1"}
    {"op": "places"}                           -> [{name, tags, aliases, comment, acquired, reservation}]
    {"op": "reserve", "filters": {..}, "prio": 0.0} -> {token, state, owner, prio, filters, place}
    {"op": "poll", "token": T}                 -> the same reservation, now
    {"op": "reservations"}                     -> every reservation
    {"op": "cancel", "token": T}               -> null (a token that no longer exists is no error)
    {"op": "acquire", "place": P}              -> null
    {"op": "release", "place": P, "from": U}   -> null (only if `from` still holds it, when given)
    {"op": "resources", "place": P}            -> [{name, cls, params}] of the acquired place
    {"op": "power", "place": P, "action": "cycle"|"on"|"off", "delay": S} -> null

Answers: {"ok": true, "result": ...} or {"ok": false, "error": "..."}. Passwords that an
exporter publishes for a NetworkService are never sent back.

On end of input (the harness exited, or was killed) it releases what it acquired and cancels
its reservations. It ignores SIGINT: on Ctrl-C the harness itself releases through it.
"""
import argparse
import asyncio
import json
import os
import signal
import sys


def main():
    args = _parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _protocol_channel()

    from labgrid.remote.client import Error, start_session
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    try:
        session = start_session(args.coordinator)
    except Exception as exc:  # refused, unreachable, wrong version
        _write_answer(channel, {"ok": False, "error": f"cannot reach the labgrid coordinator at "
                                                      f"{args.coordinator}: {exc}"})
        return 2
    labgrid = argparse.Namespace(Error=Error, Reservation=Reservation, pb2=pb2)
    bridge = Bridge(session, labgrid)
    session.loop.run_until_complete(bridge.serve(channel))
    _close_session(session)
    return 0


def _parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    return parser.parse_args()


def _protocol_channel():
    """A line-buffered copy of stdout for the answers; sys.stdout then goes to stderr, since
    labgrid's client prints progress to stdout and stdout is this protocol's channel."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    return channel


def _write_answer(channel, answer):
    channel.write(json.dumps(answer) + "\n")


def _close_session(session):
    try:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())
    except Exception:
        pass


def _reservation_dict(res):
    d = res.asdict()
    d["token"] = res.token
    allocated = d.get("allocations", {}).get("main") or []
    d["place"] = allocated[0] if allocated else None
    return d


def _place_dict(place):
    return {"name": place.name, "tags": dict(place.tags), "aliases": sorted(place.aliases),
            "comment": place.comment, "acquired": place.acquired, "reservation": place.reservation,
            "matches": [str(m) for m in place.matches]}


def _client_args(**kw):
    """The argparse namespace that labgrid's client commands read their options from."""
    base = dict(place=None, kick=False, allow_unmatched=False, name=None, delay=None)
    base.update(kw)
    return argparse.Namespace(**base)


def _resource_dicts(session, place_name):
    place = session.get_acquired_place(place_name)
    out = []
    for (name, cls), entry in sorted(session.get_target_resources(place).items()):
        params = {k: v for k, v in entry.args.items() if k != "password"}
        out.append({"name": name, "cls": cls, "params": params,
                    "has_password": bool(entry.args.get("password")), "avail": entry.avail})
    return out


class Bridge:
    """Answers requests on one labgrid client session and remembers what it reserved and
    acquired, to give it back when the harness goes away."""

    def __init__(self, session, labgrid):
        # labgrid's names (Error, Reservation, pb2) come in as an argument: main imports them
        # only once stdout is redirected
        self.session = session
        self.lg = labgrid
        self.user = f"{session.gethostname()}/{session.getuser()}"
        self.places = set()
        self.tokens = set()
        self.handlers = {"hello": self.hello, "places": self.list_places, "reserve": self.reserve,
                         "poll": self.poll, "reservations": self.reservations, "cancel": self.cancel,
                         "acquire": self.acquire, "release": self.release,
                         "resources": self.resources, "power": self.power}

    async def serve(self, channel):
        loop = asyncio.get_running_loop()
        while True:
            # read in a thread so the client's message pump keeps running between requests
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            try:
                req = json.loads(line)
                answer = {"ok": True, "result": await self.handle(req)}
            except Exception as exc:  # labgrid's UserError/ServerError, a bad request
                answer = {"ok": False, "error": str(exc) or type(exc).__name__}
            _write_answer(channel, answer)
        await self.cleanup()

    async def handle(self, req):
        op = req.get("op")
        await self.session.sync_with_coordinator()
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            raise self.lg.Error(f"unknown request {op!r}")
        return await handler(req)

    async def rpc(self, call, request):
        import grpc

        try:
            return await call(request)
        except grpc.aio.AioRpcError as exc:
            raise self.lg.Error(exc.details()) from None

    def _reservation(self, pb):
        return _reservation_dict(self.lg.Reservation.from_pb2(pb))

    async def hello(self, req):
        from labgrid import __version__ as version

        return {"user": self.user, "labgrid": version}

    async def list_places(self, req):
        return [_place_dict(p) for p in self.session.places.values()]

    async def reserve(self, req):
        pb2 = self.lg.pb2
        filters = {"main": pb2.Reservation.Filter(filter={str(k): str(v) for k, v in req["filters"].items()})}
        answer = await self.rpc(self.session.stub.CreateReservation,
                                pb2.CreateReservationRequest(filters=filters, prio=float(req.get("prio", 0.0))))
        res = self.lg.Reservation.from_pb2(answer.reservation)
        self.tokens.add(res.token)
        return _reservation_dict(res)

    async def poll(self, req):
        answer = await self.rpc(self.session.stub.PollReservation,
                                self.lg.pb2.PollReservationRequest(token=req["token"]))
        return self._reservation(answer.reservation)

    async def reservations(self, req):
        answer = await self.rpc(self.session.stub.GetReservations, self.lg.pb2.GetReservationsRequest())
        return [self._reservation(r) for r in answer.reservations]

    async def cancel(self, req):
        self.tokens.discard(req["token"])
        try:
            await self._cancel_reservation(req["token"])
        except self.lg.Error as exc:
            if "does not exist" not in str(exc):  # expired or already cancelled: nothing to undo
                raise
        return None

    async def acquire(self, req):
        self.session.args = _client_args(place=req["place"])
        await self.session.acquire()
        self.places.add(req["place"])
        return None

    async def release(self, req):
        place = req["place"]
        if req.get("from"):
            await self._release_place(place, req["from"])
        else:
            self.session.args = _client_args(place=place)
            await self.session.release()
        self.places.discard(place)
        return None

    async def resources(self, req):
        return _resource_dicts(self.session, req["place"])

    async def power(self, req):
        self.session.args = _client_args(place=req["place"], action=req.get("action", "cycle"),
                                         delay=req.get("delay"))
        self.session.power()
        return None

    async def _cancel_reservation(self, token):
        await self.rpc(self.session.stub.CancelReservation, self.lg.pb2.CancelReservationRequest(token=token))

    async def _release_place(self, place, from_user):
        await self.rpc(self.session.stub.ReleasePlace,
                       self.lg.pb2.ReleasePlaceRequest(placename=place, fromuser=from_user))

    async def cleanup(self):
        """On end of input: cancel the reservations and release the places this bridge made,
        each on its own (one failing must not keep the others)."""
        for token in list(self.tokens):
            try:
                await self._cancel_reservation(token)
            except Exception:
                pass
        for place in list(self.places):
            try:
                await self._release_place(place, self.user)
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
