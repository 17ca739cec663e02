"""What runs the transformer when encoding: features in, every layer's hidden states out.

Three runtimes, chosen by ``encode.precision`` and ``encode.backend`` (speeds: docs/results/encoding.md):

* ``torch`` fp32: the model itself, the bit-for-bit reference.
* ``torch`` bf16: a bf16 copy of the weights. Faster than autocast on both CPU and CUDA (no cast of
  every weight and activation at every op) while the pooling heads still run in fp32.
* ``openvino`` (CPU): the model converted and compiled by OpenVINO: fused kernels and packed bf16 GEMMs; for
  ``int8``, its weights in int8 (NNCF) and its GEMMs' activations quantised to int8 as they come.

Each returns the tuple the transformer's ``hidden_states`` would be (embeddings, then each layer), so
the all-layer grid stays one pass whichever runs. :func:`run_batches` runs a stream of batches through one.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import struct
import tempfile
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch

from embedbench.embedding.cache import DIGEST_BYTES, code_fingerprint
from embedbench.errors import EmbedbenchError
from embedbench.memory import available_bytes, available_text

Runtime = Callable[[dict], Sequence[torch.Tensor]]


def run_batches(runtime: Runtime, batches: Iterable[dict]) -> Iterator[tuple[dict, Sequence[torch.Tensor]]]:
    """Each batch's features with its hidden states, in order: through the runtime's own ``map`` where it
    has one (OpenVINO keeps a batch per stream in flight), else one batch at a time."""
    if hasattr(runtime, "map"):
        yield from runtime.map(batches)
    else:
        for features in batches:
            yield features, runtime(features)


def resolve_backend(backend: str, precision: str, device: str) -> str:
    """``auto`` is OpenVINO for bf16 and int8 on CPU and torch otherwise (fp32 on torch is the reference)."""
    if precision == "int8" and (device != "cpu" or backend == "torch"):
        reason = f"not on {device}" if device != "cpu" else "not with encode.backend=torch"
        raise EmbedbenchError(f"encode.precision=int8 runs on OpenVINO on the CPU, {reason}; use bf16")
    if backend == "auto":
        return "openvino" if precision in ("bf16", "int8") and device == "cpu" else "torch"
    if backend == "openvino" and device != "cpu":
        raise EmbedbenchError(f"encode.backend=openvino runs on the CPU only, not device={device}; "
                              "use encode.backend=torch there")
    return backend


# the models whose tracing failed, with why: a job's later runtimes of one (its eval after training, its mining)
# fail at once rather than trace it again
_UNCONVERTIBLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class UnconvertibleModel(EmbedbenchError):
    """A model whose own code tracing cannot follow; ``what``: which model, and why."""

    def __init__(self, what: str):
        super().__init__(f"encode.backend=openvino: {what}; encode.backend=torch encodes it without OpenVINO")
        self.what = what


def torch_runtime(model: torch.nn.Module, input_names: set[str], dtype: torch.dtype | None = None) -> Runtime:
    """``model`` itself, or a copy of it in ``dtype`` (which leaves the model, and training, untouched)."""
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model = cast_copy(model, dtype)

    def hidden_states(features: dict) -> Sequence[torch.Tensor]:
        inputs = {name: features[name] for name in input_names if name in features}
        return model(**inputs, output_hidden_states=True, return_dict=True).hidden_states

    return hidden_states


def cast_copy(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``module`` with floating weights in ``dtype``, made without a full-precision copy first
    (deepcopy takes the already-cast tensors from its memo), so a bf16 copy costs half the model's memory."""
    memo = {}
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point() and id(tensor) not in memo:
            cast = tensor.detach().to(dtype)
            memo[id(tensor)] = torch.nn.Parameter(cast, requires_grad=False) \
                if isinstance(tensor, torch.nn.Parameter) else cast
    return copy.deepcopy(module, memo).eval()


# OpenVINO's dynamic quantisation of a GEMM's activations: one int8 scale per this many input channels of each
# token. Smaller groups follow the activations' outliers closer and run slower (scripts/bench_encode.py, MiniLM on
# SciFact: group 64 took 0.84x of bf16's time at min cosine 0.9985 to fp32, 128 0.80x at 0.9979, 384 0.77x at 0.9955)
INT8_GROUP = 128


@functools.cache
def openvino_core():
    """The process's one OpenVINO ``Core``. Each Core's CPU plugin gives the calling thread an alternate signal
    stack and, when destroyed, puts back the one it found, which an earlier Core may have freed since: with
    Cores made and dropped per runtime, the next signal (Slurm's SIGUSR1 before a preemption) crashed the
    process. One Core, kept for the process's life, sets the stack once."""
    import openvino as ov

    return ov.Core()


class _AllLayers(torch.nn.Module):
    """Positional inputs in, the hidden-states tuple out: the signature a converter can trace."""

    def __init__(self, model: torch.nn.Module, input_names: list[str]):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *tensors):
        inputs = dict(zip(self.input_names, tensors))
        return self.model(**inputs, output_hidden_states=True, return_dict=True).hidden_states


def conversion_bytes(model: torch.nn.Module) -> int:
    """About the memory converting ``model`` takes beside the model: the fp32 copy of bf16 weights that
    :meth:`OpenVinoRuntime._convert` traces, and three quarters of the fp32 weights' size for the converter,
    the compiled model and int8 quantising (``python scripts/bench_conversion.py --memory`` measured at most
    half beside the copy)."""
    numel = sum(parameter.numel() for parameter in model.parameters())
    return numel * (4 if next(model.parameters()).dtype == torch.bfloat16 else 0) + numel * 3


KEPT_LAYOUT = "weights, graph, graph length"  # in the key: blobs kept in another layout are never read


def conversion_key(weights_key: str, model: torch.nn.Module, names: list[str], options: dict) -> str:
    """What a converted model depends on besides ``weights_key`` (the state dict's hash): buffers outside the
    state dict (rotary frequencies), the configuration, the model's own code, the loading options that patch
    it (``bidirectional``), the weights' dtype, the inputs traced and the versions of the converter and of
    what it traces."""
    import openvino as ov
    import transformers

    from embedbench.embedding.attention import NO_EMPTY_ROWS

    digest = hashlib.sha256(weights_key.encode())
    persistent = set(model.state_dict())
    for name, buffer in model.named_buffers():
        if name not in persistent:
            digest.update(name.encode())
            digest.update(buffer.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    parts = [model.config.to_json_string(), str(getattr(model.config, "_attn_implementation", None)),
             type(model).__qualname__, str(next(model.parameters()).dtype), code_fingerprint(model),
             repr(sorted(options.items())), ",".join(names), ov.__version__, torch.__version__,
             transformers.__version__, NO_EMPTY_ROWS, KEPT_LAYOUT]
    digest.update("|".join(parts).encode())
    return digest.hexdigest()


INT8_MODE = "INT8_ASYM"  # NNCF's weight compression: a scale and zero point per output channel


def int8_weights(converted):
    """``converted`` with the weights of its matmuls and embeddings in int8 (NNCF's :data:`INT8_MODE`), which
    OpenVINO's CPU plugin multiplies with int8 activations."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # not its table of the bit widths given to each layer
    return nncf.compress_weights(converted, mode=nncf.CompressWeightsMode[INT8_MODE])


def int8_key(key: str) -> str:
    """Where the int8 model quantised from the conversion kept under ``key`` is kept."""
    from importlib.metadata import version

    return hashlib.sha256(f"{key}|{INT8_MODE}|nncf {version('nncf')}".encode()).hexdigest()


def _kept(cache, key: str | None, make: Callable):
    """The model kept in ``cache`` under ``key``, else ``make()``, then kept there (nothing kept without a key,
    and nothing saved for a cache that would not keep it)."""
    kept = cache.blob_file(key) if key else None
    if kept is not None:
        return _deserialised(kept)
    made = make()
    # the constants' bytes are what the saved weights file will hold: a model the cache would not keep (a 7B
    # model's 28 GB) is never written out
    if key and cache.keeps(sum(op.get_byte_size() for op in made.get_ops() if op.get_type_name() == "Constant")):
        _keep(cache, key, made)
    return made


def _keep(cache, key: str, converted) -> None:
    """Kept as one blob: its weights, copied from the saved file, then its XML graph and the graph's length.
    The weights come first so that the blob's file is a weights file OpenVINO maps as it is."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder, "model.xml")
        ov.save_model(converted, xml, compress_to_fp16=False)  # fp16 would round the weights a second time
        graph = xml.read_bytes()
        cache.put_blob(key, [xml.with_suffix(".bin"), graph, struct.pack("<Q", len(graph))])


def _deserialised(kept: Path):
    """The model :func:`_keep` kept in ``kept``: OpenVINO maps its weights from the file rather than reading
    them into memory, so they are not held twice while the model compiles."""
    with kept.open("rb") as fh:
        end = fh.seek(-DIGEST_BYTES - 8, os.SEEK_END)
        (length,) = struct.unpack("<Q", fh.read(8))
        fh.seek(end - length)
        graph = fh.read(length)
    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder, "model.xml")  # the graph is read whole by read_model; only the weights stay mapped
        xml.write_bytes(graph)
        return openvino_core().read_model(xml, kept)


class OpenVinoRuntime:
    """``model`` converted once to OpenVINO (dynamic batch and length) and compiled for the CPU in streams:
    :meth:`map` keeps one batch per stream in flight, each stream on cores of its own, rather than every core
    splitting each layer of one batch (scripts/bench_encode.py compares the two).

    ``example``: tokenised features of two texts of different lengths, so tracing runs the padded path
    (a precaution: transformers 5 keeps the mask when traced either way, tests/test_runtimes.py checks
    padded batches). Threads follow torch's
    setting, so processes that share a machine (DDP, joblib sweeps) do not oversubscribe it.
    The tensors returned share the runtime's output buffers: consume them before the next call (or, from
    :meth:`map`, before asking for the next batch).
    ``profile``: keep OpenVINO's per-node timings of the last call in ``request.profiling_info``.
    ``streams=False``: one stream, every core on each batch (what scripts/bench_encode.py compares with).
    ``cache``: an :class:`~embedbench.embedding.cache.EmbeddingCache` that keeps the converted model (under
    :func:`conversion_key` of ``weights_key`` and ``options``), and for int8 the quantised model beside it
    (:func:`int8_key`), so the next run with the same weights skips converting and quantising; the graph read
    back is the one kept, so the numbers are the same.
    """

    def __init__(self, model: torch.nn.Module, input_names: set[str], example: dict, precision: str,
                 profile: bool = False, streams: bool = True, cache=None, weights_key: str = "",
                 options: dict | None = None):
        self.names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
                      if name in input_names and name in example]
        key = conversion_key(weights_key, model, self.names, options or {}) if cache is not None else None
        conversion = functools.partial(_kept, cache, key, functools.partial(self._convert, model, example))
        if precision == "int8":  # kept beside the conversion, which serves every precision: quantising takes long
            graph = _kept(cache, key and int8_key(key), lambda: int8_weights(conversion()))
        else:
            graph = conversion()
        self.compiled = openvino_core().compile_model(graph, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",  # int8: its other ops in bf16
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "THROUGHPUT" if streams else "LATENCY",
            "PERF_COUNT": profile,
            **({"DYNAMIC_QUANTIZATION_GROUP_SIZE": INT8_GROUP} if precision == "int8" else {}),
        })
        self.requests = [self.compiled.create_infer_request()
                         for _ in range(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))]
        self.request = self.requests[0]

    def _convert(self, model: torch.nn.Module, example: dict):
        import openvino as ov
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.utils import logging as hf_logging

        from embedbench.embedding.attention import NO_EMPTY_ROWS, mask_without_empty_rows, sdpa_replaced

        if model in _UNCONVERTIBLE:
            raise UnconvertibleModel(_UNCONVERTIBLE[model])
        need, free = conversion_bytes(model), available_bytes()
        if need > free:  # rather than the kernel killing the job halfway through the conversion
            raise UnconvertibleModel(f"converting {type(model).__name__} takes about {need / 2**30:.1f} GiB of "
                                     f"memory, and {available_text(free)}")
        original = model
        if next(model.parameters()).dtype == torch.bfloat16:
            # the converter misreads bf16 weights (MiniLM's first layer came out at cosine 0.73 to torch's);
            # an fp32 copy holds the same values exactly, and the compiled model still runs bf16 where asked
            model = cast_copy(model, torch.float32)
        wrapped = _AllLayers(model, self.names).eval()
        root = logging.getLogger()
        # the converter sets the root logger to ERROR and puts it back only when it succeeds: a failed
        # conversion would silence every later warning of the process
        root_state = root.level, list(root.filters), list(root.handlers)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # tracing touches attributes (loss_type) that only warn
        try:
            with torch.no_grad(), warnings.catch_warnings(), \
                    sdpa_replaced(model, NO_EMPTY_ROWS, sdpa_attention_forward, mask_without_empty_rows):
                warnings.simplefilter("ignore")  # TracerWarnings about Python branches on shapes
                return ov.convert_model(wrapped, example_input=tuple(example[n].cpu() for n in self.names),
                                        input=[ov.PartialShape([-1, -1])] * len(self.names))
        except Exception as exc:  # a model's own code that tracing cannot follow
            cause = exc
            while cause.__cause__ is not None:  # OpenVINO wraps the tracer's error in its own advice
                cause = cause.__cause__
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            _UNCONVERTIBLE[original] = f"OpenVINO could not convert {type(model).__name__} ({reason[:200]})"
            raise UnconvertibleModel(_UNCONVERTIBLE[original]) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
            root.setLevel(root_state[0])
            root.filters, root.handlers = root_state[1], root_state[2]

    def _inputs(self, features: dict) -> list:
        return [features[name].numpy() for name in self.names]

    def _outputs(self, request) -> list[torch.Tensor]:
        return [torch.from_numpy(request.get_tensor(port).data) for port in self.compiled.outputs]

    def __call__(self, features: dict) -> Sequence[torch.Tensor]:
        """One batch, on one stream."""
        self.request.infer(self._inputs(features))
        return self._outputs(self.request)

    def map(self, batches: Iterable[dict]) -> Iterator[tuple[dict, Sequence[torch.Tensor]]]:
        """Each batch's features with its hidden states, in order, a batch per stream in flight: batch ``i``
        runs on request ``i mod n`` once batch ``i - n``, which ran there, has been handed out."""
        in_flight = deque()
        for i, features in enumerate(batches):
            if len(in_flight) == len(self.requests):
                yield self._collect(*in_flight.popleft())
            request = self.requests[i % len(self.requests)]
            request.start_async(self._inputs(features))
            in_flight.append((request, features))
        while in_flight:
            yield self._collect(*in_flight.popleft())

    def _collect(self, request, features: dict) -> tuple[dict, Sequence[torch.Tensor]]:
        request.wait()
        return features, self._outputs(request)
