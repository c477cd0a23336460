"""The fleet doctor (`kafka-gateway-doctor`): every gateway and HAProxy host checked over SSH, one verdict."""
