"""Running the room node's firmware under real MicroPython (its WebAssembly port)."""
