"""Speed benchmarks, one module per benchmark (``posetransfer bench ...`` only parses arguments).

* :mod:`~posetransfer.bench.encodings`: pose encodings per training sample (``bench encodings``).
* :mod:`~posetransfer.bench.train`: full training steps of a config on synthetic batches
  (``bench train``, with MFU on CUDA) and the bf16-vs-fp32 loss-curve check (``bench precision``).
* :mod:`~posetransfer.bench.infer`: inference of G1, G1+G2 and the multi-view generator at both
  data sets' sizes (``bench infer``).
* :mod:`~posetransfer.bench.peak`: FLOP counting, the table of known bf16 peaks and the
  convolution micro-benchmark that measures the machine's own peak.
* :mod:`~posetransfer.bench.studio`: the studio's load benchmark (``python -m posetransfer.bench.studio``).
* :mod:`~posetransfer.bench.ssim`: the SSIM variants of ``evaluate`` (``python -m posetransfer.bench.ssim``).

Benchmarks build networks and steps through the same public task and trainer calls as training
(:meth:`Task.build_networks`, :meth:`Trainer.prepare`, :meth:`Trainer.train_step`).
"""
