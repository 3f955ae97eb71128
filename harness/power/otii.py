"""Qoitech Otii Arc / Ace through the Otii TCP server (optional extra:
``pip install otii-tcp-client``; the Otii application or server must be running).

    - meter: otii
      host: 127.0.0.1
      port: 1905
      channel: mp              # mp (main power, W) | mc (main current, A, times voltage_v)
      voltage_v: null          # needed for channel mc

One recording per start()/stop(); the samples (timestamp, interval, values) are placed
at host time (start() time + recording offset). The TCP round trip of start_recording
(ms) is the alignment uncertainty. Written against otii-tcp-client 1.0's API; not run
against an instrument here.
"""
from __future__ import annotations


from . import meter
from .base import Meter, MeterError, Option, PowerTrace
from .joulescope import load


@meter("otii")
class OtiiMeter(Meter):
    OPTIONS = {
        "host": Option(str, "127.0.0.1", help="the Otii TCP server"),
        "port": Option(int, 1905, minimum=1, maximum=65535, help="its port"),
        "channel": Option(str, "mp", choices=("mp", "mc"), help="mp (power) or mc (current; needs voltage_v)"),
        "voltage_v": Option(float, None, minimum=0.0, help="the supply voltage, for channel mc"),
        "sample_rate_hz": Option(int, 1000, minimum=1, help="samples per second"),
    }
    client_module = None  # otii_tcp_client; tests inject a fake

    @classmethod
    def cross_check(cls, options, source, where):
        if options["channel"] == "mc" and options["voltage_v"] is None:
            raise cls.config_error(source, f"{where}.voltage_v", "the supply voltage for channel mc", None)

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.nominal_rate_hz = float(options["sample_rate_hz"])
        self._otii = None

    def _open(self):
        if self._otii is not None:
            return
        mod = self.client_module = self.client_module or load("otii_tcp_client.otii_client", "otii-tcp-client")
        try:
            self._otii = mod.OtiiClient().connect(host=self.options["host"], port=self.options["port"])
            devices = self._otii.get_devices()
        except Exception as exc:
            raise MeterError(f"{self.label}: cannot reach the Otii server at "
                             f"{self.options['host']}:{self.options['port']}: {exc}") from None
        if not devices:
            raise MeterError(f"{self.label}: the Otii server sees no instrument")
        self._arc = devices[0]
        self._arc.enable_channel(self.options["channel"], True)
        self._project = self._otii.get_active_project()

    def start(self):
        self._open()
        self._t0 = self.clock.time()
        self._project.start_recording()

    def stop(self) -> PowerTrace:
        self._project.stop_recording()
        stopped = self.clock.time()
        rec = self._project.get_last_recording()
        ch = self.options["channel"]
        n = rec.get_channel_data_count(self._arc.id, ch)
        data = rec.get_channel_data(self._arc.id, ch, 0, n) if n else {"timestamp": 0.0, "interval": 0.0, "values": []}
        scale = 1.0 if ch == "mp" else self.options["voltage_v"]
        first, step = float(data["timestamp"]), float(data["interval"])
        trace = PowerTrace(source=self.label, started=self._t0, stopped=stopped,
                           nominal_rate_hz=1.0 / step if step else self.nominal_rate_hz)
        trace.t = [self._t0 + first + k * step for k in range(len(data["values"]))]
        trace.watts = [float(v) * scale for v in data["values"]]
        trace.notes.append("aligned on the host time of start_recording(): its round trip is not corrected")
        return trace

    def close(self):
        self._otii = None
