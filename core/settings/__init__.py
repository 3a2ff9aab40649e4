"""Settings every run reads: the one range table (bounds), strict config loading, the job config
base class and the device string."""
