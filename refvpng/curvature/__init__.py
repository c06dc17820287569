"""Curvature: Fisher matrices, Hessians, structured operators and the damped solve."""
