"""Clips and videos in and out.

:mod:`.clips` reads what users have (a video, a folder of frames, a glob) and picks the
key-frames; :mod:`.video` reads and writes video files and frame folders through ffmpeg;
:mod:`.media` finds the ffmpeg binary; :mod:`.pictures` draws the side-by-side GIF and the
motion tracks.
"""
