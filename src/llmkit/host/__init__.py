"""The machine llmkit runs on: CPUs available to the process, glibc allocator tuning, this
process's memory readings, and C++ kernels built for this CPU on first use."""
