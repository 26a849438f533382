"""Task types for the hardware of the device the agent runs on (see ``docs/raspberry-pi.md``).

One module per library, each its own entry point of ``edgetasks.tasks``, so a missing library
makes only its own types unavailable (with an install hint) and a missing device (no GPIO chip,
no ``/dev/i2c-*``, no 1-Wire bus) makes a type unavailable with the reason
(:meth:`edge.task.Task.unavailable_reason`):

* :mod:`tasks.hardware.gpio`: ``gpio_in``, ``gpio_out``, ``pwm_out`` (gpiozero);
* :mod:`tasks.hardware.i2c`: ``i2c_read``, ``i2c_write`` (smbus2);
* :mod:`tasks.hardware.serial_port`: ``serial_in``, ``serial_out`` (pyserial);
* :mod:`tasks.hardware.one_wire`: ``one_wire_temperature`` (the Linux w1 sysfs files; no library:
  a built-in).

This package imports none of them: importing it costs nothing. Nor do the modules: each checks that
its library is installed and imports it when a task first needs it (``tasks/_lazy.py``), so an
agent that lists these types but runs none keeps its memory.
"""

__all__: list[str] = []
