"""AWS: layer versions, the functions that use them, what may go; boto3 only via client.py."""
