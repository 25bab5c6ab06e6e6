"""The server process and the operating system: its pid file, and the signals that reload it."""
