"""The board's facts: pins, the panic loops' resistors and thresholds, timings.

One place for what the README's wiring section states; ``main.py`` wires these pins and the
simulated van builds its loops from the same resistor values. Nothing here touches hardware.
"""

# ---- RS-485 (UART0 through a half-duplex transceiver, e.g. MAX3485 / THVD1410) ---------------
UNIT = 7  # Modbus unit id (the profile's default_unit)
BAUDRATE = 9600  # 8N1
UART_ID = 0
PIN_TX = 0  # GP0 -> transceiver DI
PIN_RX = 1  # GP1 <- transceiver RO
PIN_DE = 2  # GP2 -> DE and /RE tied together: high transmits, low listens (no echo)

# ---- inputs ----------------------------------------------------------------------------------
PIN_PANIC_DESK = 26  # GP26 = ADC0: desk panic button loop
PIN_PANIC_DOOR = 27  # GP27 = ADC1: door-side panic button loop
PIN_DOOR = 6  # door reed contact to GND, internal pull-up: low = closed
PIN_SESSION = 7  # session push button to GND, internal pull-up: low = pressed
PIN_OCCUPANCY = 8  # PIR module output, active high

# ---- outputs (through low-side MOSFETs / a relay driver) -------------------------------------
PIN_DOOR_SIGN = 10
PIN_RECORDING = 11
PIN_BUZZER = 12
PIN_CALM_LIGHT = 13  # PWM
# Well above what a camera's shutter or an ear catches: the room's sessions are recorded.
CALM_PWM_HZ = 25000

# ---- panic loops: double end of line, read ratiometrically ------------------------------------
# ADC pin -- R_PULLUP -- ADC_VREF (3.3 V); the loop from the ADC pin to GND is R_EOL in series
# with R_ALARM, R_ALARM bridged by the button's normally closed contact:
#   button at rest: R_EOL (4.7 k)      pressed: R_EOL + R_ALARM (9.4 k)
#   wire cut: open (infinite)          wire shorted: 0
R_PULLUP = 4700
R_EOL = 4700
R_ALARM = 4700
ADC_FULL = 65535  # machine.ADC.read_u16()


def adc_counts(loop_ohms: int) -> int:
    """What ``read_u16()`` reads for a loop of ``loop_ohms`` (-1: an open loop)."""
    if loop_ohms < 0:
        return ADC_FULL
    return ADC_FULL * loop_ohms // (R_PULLUP + loop_ohms)


# Bands by loop resistance, their bounds far from both resistors' values and their tolerances:
SHORT_BELOW_OHMS = 2000  # below: tamper_short
ALARM_FROM_OHMS = 6800  # from here: alarm (between 4.7 k and 9.4 k)
OPEN_FROM_OHMS = 22000  # from here: tamper_open
SHORT_BELOW = adc_counts(SHORT_BELOW_OHMS)  # 19562
ALARM_FROM = adc_counts(ALARM_FROM_OHMS)  # 38751
OPEN_FROM = adc_counts(OPEN_FROM_OHMS)  # 53998

# ---- timings (ms) ----------------------------------------------------------------------------
SAMPLE_MS = 5  # inputs sampled every 5 ms
ZONE_DEBOUNCE_MS = 30  # a panic loop's reading holds this long before its state changes
PANIC_HOLD_MS = 0  # > 0: a press counts only once held this long (hold-to-activate)
DOOR_DEBOUNCE_MS = 50
SESSION_DEBOUNCE_MS = 30
OCCUPANCY_DEBOUNCE_MS = 100
WDT_TIMEOUT_MS = 2000  # the main loop turns every ~1 ms; 2 s without a turn is a hang
MAINTENANCE_WINDOW_MS = 1000  # BOOTSEL pressed this soon after a reset: REPL, no main loop
