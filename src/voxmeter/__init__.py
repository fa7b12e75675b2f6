"""voxmeter: usage metering and billing reports for cloud contact centers."""

__version__ = "0.1.0"
