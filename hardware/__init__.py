"""gpiozero devices, pin factories and their mocks: the bottom layer.

Holds: the motor power switch, the tachometer, the force sensor's ADC, pin
factories (with a clocked mock factory for virtual time), mock ADCs and the
``power-off`` pin driver. Drivers take plain values (pin names, levels, numbers),
never config models.

May import: gpiozero and the standard library only; nothing else from gunguard.
"""
