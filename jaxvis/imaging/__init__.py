"""Pixels in and out: reading and checking images, MATLAB-style display (imtile, mat2gray, imresize),
atomic file writes, progress bars."""
