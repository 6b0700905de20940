"""Style transfer for videos (Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos").

One idea per module: :mod:`~nstjax.video.frames` reads and writes clips (a folder of frames, or a
video file through imageio with imageio-ffmpeg, the ``video`` extra), :mod:`~nstjax.video.flow`
estimates optical flow with OpenCV and caches it, :mod:`~nstjax.video.reliability` finds the
pixels a flow can be trusted at, :mod:`~nstjax.video.warp` warps an image along a flow (pure JAX),
:mod:`~nstjax.video.consistency` measures flicker, :mod:`~nstjax.video.synthetic` makes a clip with
known motion, and :mod:`~nstjax.video.modes` stylises a clip frame by frame (``sequential``), in
passes over the whole clip (``multipass``) or without any temporal term (``independent``),
resumably in a work folder (:mod:`~nstjax.video.workdir`); :mod:`~nstjax.video.compare` measures
the three modes on a clip with known motion. The temporal loss itself is a term of
the engine's objective (:func:`nstjax.losses.temporal_loss`).
"""
