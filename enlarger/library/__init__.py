"""The photo library (reference documents 000-003): projects, images, their lifecycle and
derivatives, and the job handlers that tie media and storage to the queue."""
