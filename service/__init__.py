"""feedback-themes service: settings, storage, REST API and the command line."""
