"""An offline samna, faked only at the samna module boundary, so sinabs' real DynapcnnNetwork.to()
/ make_config / ConfigBuilder run on top of it and the tests read what they produced.

What is faked, and only as far as sinabs 3.1.3 and speck_mtt touch it:
- samna.device: get_all_devices (DeviceInfo records; `Board.plugged` is re-read at every call, as
  USB enumeration is), open_device, close_device.
- samna.speck2e.configuration.SpeckConfiguration: dvs_layer and 9 cnn_layers whose attributes are
  fixed by __slots__ (a misspelt field raises, as samna's pybind objects do), and
  samna.speck2e.validate_configuration (shape consistency; `Board.refuse` makes it refuse).
- samna.speck2e.event: Spike, ReadNeuronValue, NeuronValue, WriteNeuronValue as plain records.
- samna.graph.EventFilterGraph, BasicSourceNode/BasicSinkNode buffers: a started graph delivers
  what is written to the device model, which logs it and answers through `Board.respond`.
Not faked: the chip itself. `Board.respond(events) -> [batches]` scripts its output; each batch is
what one get_events() call returns (an empty batch in the middle is a USB stall).
"""

from __future__ import annotations

import copy
import importlib.metadata
import sys
import types
from collections.abc import Callable
from typing import Any

CHIP_CORES = 9


class _Record:
    """A samna value type: only the declared fields exist."""

    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, **values: Any):
        for name in self.__slots__:
            setattr(self, name, copy.deepcopy(self._defaults.get(name, 0)))
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _record(name: str, fields: tuple[str, ...], **defaults: Any) -> type:
    return type(name, (_Record,), {"__slots__": fields, "_defaults": defaults})


Spike = _record("Spike", ("layer", "feature", "x", "y", "timestamp"))
ReadNeuronValue = _record("ReadNeuronValue", ("layer", "address", "timestamp"))
NeuronValue = _record("NeuronValue", ("layer", "address", "neuron_state", "timestamp"))
WriteNeuronValue = _record("WriteNeuronValue", ("layer", "address", "neuron_state", "timestamp"))
DeviceInfo = _record("DeviceInfo", ("device_type_name", "usb_device_address", "usb_bus_number", "serial_number"))
Destination = _record("Destination", ("layer", "enable", "pooling"), pooling=1, enable=False)
Pooling = _record("Pooling", ("x", "y"), x=1, y=1)


class CNNLayerConfig(_Record):
    __slots__ = ("dimensions", "destinations", "weights", "biases", "leak_enable", "return_to_zero",
                 "threshold_high", "threshold_low", "monitor_enable", "neurons_initial_value")
    _defaults = {"dimensions": None, "weights": [], "biases": [], "neurons_initial_value": [],
                 "leak_enable": False, "return_to_zero": False, "monitor_enable": False}

    def __init__(self):
        super().__init__(destinations=[Destination(), Destination()])


class DVSLayerConfig(_Record):
    __slots__ = ("merge", "mirror", "mirror_diagonal", "cut", "origin", "pooling", "pass_sensor_events",
                 "monitor_enable", "destinations")
    _defaults = {"merge": False, "mirror_diagonal": False, "pass_sensor_events": True, "monitor_enable": False}

    def __init__(self):
        super().__init__(destinations=[Destination(), Destination()], pooling=Pooling())


class SpeckConfiguration(_Record):
    __slots__ = ("dvs_layer", "cnn_layers")
    DVSLayerConfig = DVSLayerConfig

    def __init__(self):
        super().__init__(dvs_layer=DVSLayerConfig(), cnn_layers=[CNNLayerConfig() for _ in range(CHIP_CORES)])


def _shape(nested: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(nested, list):
        shape.append(len(nested))
        nested = nested[0] if nested else None
    return tuple(shape)


def layout_problem(config: SpeckConfiguration) -> str | None:
    """What samna's validator would object to in the shapes sinabs wrote, or None."""
    for core, layer in enumerate(config.cnn_layers):
        if not layer.weights:
            continue
        dims = layer.dimensions
        out_f, in_f = dims["output_shape"]["feature_count"], dims["input_shape"]["feature_count"]
        k = dims["kernel_size"]
        if _shape(layer.weights) != (out_f, in_f, k, k):
            return f"core {core}: weights {_shape(layer.weights)} vs dimensions ({out_f}, {in_f}, {k}, {k})"
        size = dims["output_shape"]["size"]
        if _shape(layer.neurons_initial_value) != (out_f, size["x"], size["y"]):
            return f"core {core}: neuron states {_shape(layer.neurons_initial_value)}"
        for dest in layer.destinations:
            if dest.enable and not config.cnn_layers[dest.layer].weights:
                return f"core {core}: destination core {dest.layer} is not configured"
    return None


class _Graph:
    def __init__(self):
        self.nodes: list = []
        self.running = False

    def sequential(self, nodes: list) -> list:
        self.nodes = list(nodes)
        return self.nodes

    def start(self) -> bool:
        self.running = True
        if len(self.nodes) == 2:
            self.nodes[0].target = self.nodes[1]
        return True

    def stop(self) -> bool:
        self.running = False
        if len(self.nodes) == 2:
            self.nodes[0].target = None
        return True


class SourceNode:
    """BasicSourceNode: write() reaches the device only through a started graph."""

    def __init__(self):
        self.target = None

    def write(self, events: list) -> None:
        if self.target is not None:
            self.target.receive(list(events))


class SinkNode:
    """BasicSinkNode: get_events() returns the next batch the device sent."""

    def __init__(self):
        self.batches: list[list] = []

    def receive(self, events: list) -> None:
        self.batches.append(list(events))

    def get_events(self) -> list:
        return self.batches.pop(0) if self.batches else []


class StopWatch:
    def __init__(self, log: list):
        self.log = log

    def start(self) -> None:
        self.log.append("start")

    def stop(self) -> None:
        self.log.append("stop")

    def reset(self) -> None:
        self.log.append("reset")


class _ModelSink:
    def __init__(self, device: "Device"):
        self.device = device

    def receive(self, events: list) -> None:
        self.device.board.written.append(list(events))
        for batch in self.device.board.respond(events):
            if self.device.model.source.target is not None:
                self.device.model.source.target.receive(batch)


class Model:
    def __init__(self, device: "Device"):
        self.device = device
        self.sink = _ModelSink(device)
        self.source = SourceNode()

    def apply_configuration(self, config: SpeckConfiguration) -> None:
        if self.device.board.fail_apply:
            raise RuntimeError(self.device.board.fail_apply)
        self.device.board.applied.append(copy.deepcopy(config))

    def get_configuration(self) -> SpeckConfiguration:
        return copy.deepcopy(self.device.board.applied[-1])

    def get_sink_node(self) -> _ModelSink:
        return self.sink

    def get_source_node(self) -> SourceNode:
        return self.source


class Device:
    def __init__(self, board: "Board", info):
        self.board, self.info = board, info
        self.model = Model(self)
        self.watch = StopWatch(board.watch_log)

    def get_model(self) -> Model:
        return self.model

    def get_stop_watch(self) -> StopWatch:
        return self.watch


class Board:
    """The desk: what is plugged in, what was opened/closed/applied/written, how the chip answers."""

    def __init__(self, n_devkits: int = 1):
        self.plugged = [DeviceInfo(device_type_name="Speck2eDevKit", usb_device_address=10 + i, usb_bus_number=1,
                                   serial_number=f"SN{i}") for i in range(n_devkits)]
        self.opened: list[Device] = []
        self.closed: list[Device] = []
        self.applied: list[SpeckConfiguration] = []
        self.written: list[list] = []
        self.watch_log: list[str] = []
        self.refuse: str | None = None
        self.fail_apply: str | None = None
        self.respond: Callable[[list], list[list]] = lambda events: []

    def open_devices(self) -> list[Device]:
        return [d for d in self.opened if not any(d is c for c in self.closed)]

    def modules(self) -> dict[str, types.ModuleType]:
        """The samna module tree, bound to this board."""
        def module(name: str, **attrs: Any) -> types.ModuleType:
            mod = types.ModuleType(name)
            mod.__path__ = []
            mod.__dict__.update(attrs)
            return mod

        def open_device(info):
            device = Device(self, info)
            self.opened.append(device)
            return device

        def validate(config):
            problem = self.refuse or layout_problem(config)
            return (problem is None, problem or "")

        try:
            version = importlib.metadata.version("samna")
        except importlib.metadata.PackageNotFoundError:
            version = "0.48.6"
        event = module("samna.speck2e.event", Spike=Spike, ReadNeuronValue=ReadNeuronValue, NeuronValue=NeuronValue,
                       WriteNeuronValue=WriteNeuronValue)
        speck2e = module("samna.speck2e", event=event, validate_configuration=validate,
                         configuration=module("samna.speck2e.configuration", SpeckConfiguration=SpeckConfiguration))
        speck2f = module("samna.speck2f", event=module("samna.speck2f.event", Spike=_record("Spike2f", ("layer",))),
                         configuration=module("samna.speck2f.configuration", SpeckConfiguration=SpeckConfiguration))
        nodes = module("samna.specksim.nodes", SpecksimConvolutionalFilterNode=object, SpecksimIAFFilterNode=object,
                       SpecksimSumPoolingFilterNode=object)
        device = module("samna.device", DeviceInfo=DeviceInfo, get_all_devices=lambda: list(self.plugged),
                        open_device=open_device, close_device=self.closed.append)
        samna = module("samna", __version__=version, device=device, speck2e=speck2e, speck2f=speck2f,
                       specksim=module("samna.specksim", nodes=nodes),
                       graph=module("samna.graph", EventFilterGraph=_Graph),
                       BasicSourceNode_speck2e_event_speck2e_input_event=SourceNode,
                       BasicSinkNode_speck2e_event_output_event=SinkNode)
        tree = {m.__name__: m for m in (samna, device, speck2e, event, speck2e.configuration, speck2f, speck2f.event,
                                        speck2f.configuration, samna.specksim, nodes, samna.graph)}
        tree["samnagui"] = module("samnagui")
        return tree


def _ours(name: str) -> bool:
    return name.split(".")[0] in ("samna", "samnagui") or name.startswith("sinabs.backend.dynapcnn")


class installed:
    """Context: `board`'s samna in sys.modules and sinabs.backend.dynapcnn imported afresh on top of it;
    on exit sys.modules is as before (the inert placeholder or nothing)."""

    def __init__(self, board: Board):
        self.board = board

    def __enter__(self) -> Board:
        import sinabs.backend

        self.saved = {k: v for k, v in sys.modules.items() if _ours(k)}
        self.saved_attr = sinabs.backend.__dict__.get("dynapcnn")
        for name in self.saved:
            del sys.modules[name]
        sys.modules.update(self.board.modules())
        backend = importlib.import_module("sinabs.backend.dynapcnn")
        network = sys.modules["sinabs.backend.dynapcnn.dynapcnn_network"]
        network.time = types.SimpleNamespace(sleep=lambda s: None)  # sinabs waits 1 s after apply
        self.board.backend = backend
        return self.board

    def __exit__(self, *exc) -> None:
        import sinabs.backend

        for name in [k for k in sys.modules if _ours(k)]:
            del sys.modules[name]
        sys.modules.update(self.saved)
        if self.saved_attr is None:
            sinabs.backend.__dict__.pop("dynapcnn", None)
        else:
            sinabs.backend.dynapcnn = self.saved_attr
