"""Reference models of the emulator and refiner runtime (exact linear emulator, stateful
stochastic emulator, band-projecting refiner): ``models`` holds the torch modules,
``export`` writes the artifacts, ``registry`` their paths."""
