"""The result object every algorithm returns, and the provenance recorded with it."""
from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ReconResult:
    """Result of a reconstruction (one object for every algorithm).

    Attributes
    ----------
    image : ndarray
        Best reconstruction (centred), the best start by final R-factor.
    images : list of ndarray
        One image per start, best first.
    rfactors : list of float
        Final R-factor of each image in ``images``.
    support : ndarray or None
        Final support of the best start.
    history : dict[str, list]
        Per-iteration metrics of the best start (``iteration``, ``R_F``, algorithm-specific ones,
        ``stage``).
    histories : list of dict
        The history of every start, in the order of ``images``.
    n_iter : int
        Iterations run per start.
    success : bool
        True when the run finished (or was stopped by a callback) and produced a finite image.
    message : str
    timings : dict
        Wall times in seconds (``setup_s``, ``iterate_s``, ``metrics_s``, ``total_s``,
        ``iterations_run`` = the iterations this call stepped, summed over the starts (fewer
        than the result's when it resumed a checkpoint), ``per_iteration_s`` = ``iterate_s``
        per iteration run, the algorithm alone, and ``per_iteration_total_s`` =
        (``iterate_s`` + ``metrics_s``) per iteration run; NaN when nothing was left to run).
    config : dict
        The parameters that produced the result (a saved call).
    provenance : dict
        Software versions, device, host, date, seed.
    mask : ndarray or None
        Detector mask of the data (True = measured), saved with the result.
    """

    image: np.ndarray
    images: list = field(default_factory=list)
    rfactors: list = field(default_factory=list)
    support: np.ndarray | None = None
    history: dict = field(default_factory=dict)
    histories: list = field(default_factory=list)
    n_iter: int = 0
    success: bool = True
    message: str = ""
    timings: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    probe: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    mask: np.ndarray | None = None

    @property
    def rfactor(self) -> float:
        """Final R-factor of the best image."""
        return self.rfactors[0] if self.rfactors else float("nan")

    def save(self, path) -> None:
        """Write the result into a CXI file (atomically): ``entry_1/image_k`` per start."""
        from ..io.cxi import write_result

        write_result(path, images=self.images or [self.image], support=self.support,
                     history=self.histories or self.history, config=self.config, provenance=self.provenance,
                     timings=self.timings, rfactors=self.rfactors, extra_images=self.extras or None,
                     mask=self.mask)

    def __repr__(self) -> str:  # short, useful in notebooks
        return (f"ReconResult(image={self.image.shape} {self.image.dtype}, starts={len(self.images)}, "
                f"R_F={self.rfactor:.4g}, n_iter={self.n_iter}, success={self.success}, "
                f"message={self.message!r})")


def provenance(device=None, seed=None, threads: int | None = None) -> dict:
    """Versions, device, CPU threads (``threads``, default torch's current count), the FFT
    library's path (``fft``: ``"mkl (direct)"`` where :mod:`phasekit.core.mkl_fft` calls MKL,
    else ``"torch.fft"``), host and date for a result file."""
    from .. import __version__
    from ..core import mkl_fft

    on_cpu = device is None or str(device).startswith("cpu")
    return {
        "software": "phasekit", "version": __version__, "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
        "host": platform.node(), "machine": platform.machine(),
        "device": str(device) if device is not None else "cpu",
        "threads": int(threads) if threads is not None else torch.get_num_threads(),
        "fft": "mkl (direct)" if on_cpu and mkl_fft.available() else "torch.fft",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
    }


