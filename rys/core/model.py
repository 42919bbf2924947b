"""A GGUF seen as layers: trunk layers, extra (MTP / nextn) layers, kinds,
per-layer arrays and the tensors that belong to each layer."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from . import arch as A
from . import keys
from .errors import RysError
from .gguf_file import GGUFFile, Tensor, Value, read

BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


@dataclass
class KindInfo:
    """Per-layer kinds of the trunk and extra layers, and where they come from."""

    kinds: list[str]  # one per layer, n_layer_all long
    source: str  # "scalar", "array", "per-layer arrays", "uniform"
    period: int | None = None  # the scalar behind the kinds, when source == "scalar"
    rule: A.KindRule | None = None


@dataclass
class Model:
    file: GGUFFile
    arch: str
    n_layer_all: int  # {arch}.block_count: trunk + extra layers
    n_extra: int  # MTP / nextn layers kept after the trunk
    layers: list[list[Tensor]]  # tensors of layer i, in file order
    globals: list[Tensor]  # tensors outside any layer
    per_layer_arrays: list[str]  # `{arch}.*` array keys with one entry per layer
    kind_infos: list[KindInfo] = field(default_factory=list)  # one per rule that applies

    @property
    def n_trunk(self) -> int:
        return self.n_layer_all - self.n_extra

    @property
    def path(self) -> Path:
        return self.file.path

    def key(self, template: str) -> str:
        return A.key(template, self.arch)

    def get(self, template: str, default=None):
        return self.file.get(self.key(template), default)

    def kinds(self) -> list[str]:
        """One label per layer, joining the labels of every rule ("swa", "deltanet+moe"...)."""
        if not self.kind_infos:
            return ["block"] * self.n_layer_all
        return ["+".join(k) for k in zip(*(info.kinds for info in self.kind_infos))]

    def layer_bytes(self, i: int) -> int:
        return sum(t.n_bytes for t in self.layers[i])

    def signature(self, i: int) -> tuple:
        """What llama.cpp's loader sees of layer i: tensor suffixes and shapes."""
        return tuple(sorted((BLOCK_RE.match(t.name).group(2), t.shape) for t in self.layers[i]))

    def summary(self) -> dict:
        """What `rys inspect` shows (and prints as JSON): layers, their kinds and where
        llama.cpp takes them from, per-layer arrays, tensor types, bytes, rys provenance."""
        kinds = self.kinds()
        scalar = next((i for i in self.kind_infos if i.source == "scalar" and i.rule.is_periodic()), None)
        rys_keys = {k[len(keys.PREFIX):]: v.value for k, v in self.file.fields.items()
                    if k.startswith(keys.PREFIX) and k != keys.PAGE_PAD}
        return {
            "file": self.path.name,
            "size": self.file.size,
            "architecture": self.arch,
            "block_count": self.n_trunk,
            "extra_layers": self.n_extra,
            "period": scalar.period if scalar else None,
            "kind_source": [self._kind_source(info) for info in self.kind_infos],
            "per_layer_arrays": self.per_layer_arrays,
            "tensor_types": dict(Counter(t.type_name for t in self.file.tensors).most_common()),
            "layers": [{"index": i, "kind": kinds[i], "extra": i >= self.n_trunk, "bytes": self.layer_bytes(i),
                        "tensors": len(self.layers[i])} for i in range(self.n_layer_all)],
            "rys": rys_keys or None,
        }

    def _kind_source(self, info: KindInfo) -> dict:
        rule = info.rule
        if rule is None:
            return {"kinds": sorted(set(info.kinds)), "source": info.source, "key": None, "value": info.period}
        key = self.key(rule.scalar_key if info.source == "scalar" else rule.array_key)
        return {"kinds": list(rule.kinds), "source": info.source, "key": key, "value": info.period}


def load(path) -> Model:
    """Read a GGUF model and work out its layers. Raises RysError on bad input."""
    gf = read(path)
    arch = gf.arch
    block_key, nextn_key = A.key(gguf.Keys.LLM.BLOCK_COUNT, arch), A.key(A.NEXTN_PREDICT_LAYERS, arch)
    block_count = gf.get(block_key)
    if block_count is None:
        raise RysError(f"{gf.path.name}: no {block_key} key: not a layered language model")
    n_layer_all = int(block_count)
    n_extra = int(gf.get(nextn_key, 0) or 0)
    if not 0 <= n_extra < n_layer_all:
        raise RysError(f"{gf.path.name}: {nextn_key} = {n_extra} does not fit {n_layer_all} layers")
    layers: list[list[Tensor]] = [[] for _ in range(n_layer_all)]
    globals_: list[Tensor] = []
    for t in gf.tensors:
        m = BLOCK_RE.match(t.name)
        if m is None:
            globals_.append(t)
            continue
        i = int(m.group(1))
        if i >= n_layer_all:
            raise RysError(f"{gf.path.name}: tensor {t.name} names layer {i} but block_count is {n_layer_all}")
        layers[i].append(t)
    model = Model(gf, arch, n_layer_all, n_extra, layers, globals_, _per_layer_arrays(gf, arch, n_layer_all, n_extra))
    model.kind_infos = infer_kinds(model.arch, model.file.fields, n_layer_all, n_extra)
    return model


def _per_layer_arrays(gf: GGUFFile, arch: str, n_layer_all: int, n_extra: int) -> list[str]:
    skip = {A.key(k, arch) for k in A.NOT_PER_LAYER}
    prefix = arch + "."
    lengths = {n_layer_all, n_layer_all - n_extra}
    return [
        k for k, v in gf.fields.items()
        if k.startswith(prefix) and v.is_array and k not in skip and len(v.value) in lengths
    ]


def infer_kinds(arch: str, fields: dict[str, Value], n_layer_all: int, n_extra: int) -> list[KindInfo]:
    """Kinds of every layer as llama.cpp computes them from these fields.

    Used on the source file and on the planned output alike, so a rewrite can
    be checked to type every layer as its source layer.
    """
    n_trunk = n_layer_all - n_extra

    def get(template: str):
        v = fields.get(A.key(template, arch))
        return None if v is None else v.value

    infos = []
    for rule in A.rules_for(arch):
        if not rule.applies(get):
            continue
        array = get(rule.array_key) if rule.array_key else None
        if isinstance(array, list):
            if len(array) != n_layer_all:
                raise RysError(f"{A.key(rule.array_key, arch)} has {len(array)} entries for {n_layer_all} layers")
            infos.append(KindInfo([rule.kinds[0] if f else rule.kinds[1] for f in array], "array", None, rule))
            continue
        scalar = get(rule.scalar_key)
        period = rule.default if scalar is None else int(scalar)
        if rule.is_periodic() and period < 0:
            raise RysError(f"{A.key(rule.scalar_key, arch)} = {period} is not a valid {rule.what}")
        if rule.what == "interval" and period == 0:
            raise RysError(f"{A.key(rule.scalar_key, arch)} is 0, which llama.cpp cannot use")
        flags = [i < n_trunk and rule.flag(i, period, n_trunk) for i in range(n_layer_all)]
        infos.append(KindInfo([rule.kinds[0] if f else rule.kinds[1] for f in flags], "scalar", period, rule))
    if arch in A.ARRAY_KINDS:
        def get_at(template: str, i: int):
            v = get(template)
            return v[i] if isinstance(v, list) else v
        infos.append(KindInfo([A.array_kind(arch, i, get_at) for i in range(n_layer_all)], "per-layer arrays"))
    return infos


def check_known(model: Model) -> None:
    """Refuse architectures whose layer typing rys cannot vouch for.

    Known architectures pass. An unknown one passes only when all its trunk
    layers have the same tensor signature and it carries none of the keys that
    type layers by a scalar.
    """
    if model.arch in A.RULES or model.arch in A.UNIFORM or model.arch in A.ARRAY_KINDS:
        return
    name = model.path.name
    scalar_keys = [model.key(k) for k in A.PERIOD_KEYS if model.key(k) in model.file.fields]
    if scalar_keys:
        raise RysError(f"{name}: architecture '{model.arch}' is unknown to rys and types its layers by "
                       f"{scalar_keys[0]}; rys cannot rewrite it safely")
    signatures = defaultdict(list)
    for i in range(model.n_trunk):
        signatures[model.signature(i)].append(i)
    if len(signatures) > 1:
        groups = sorted(signatures.values(), key=len)
        raise RysError(f"{name}: architecture '{model.arch}' is unknown to rys and its layers differ "
                       f"(layer {groups[0][0]} has other tensors than layer {groups[-1][0]}); rys cannot rewrite it safely")
