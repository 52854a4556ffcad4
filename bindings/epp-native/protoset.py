"""Write the FileDescriptorSet of envoy.service.ext_proc.v3 (the
ExternalProcessor service and every file it imports) from the xds-protos
package installed for dlsched[epp], and print the names of the files protoc
must generate (the google/protobuf ones come with libprotobuf).

usage: python protoset.py OUT.desc
"""
import sys

from envoy.service.ext_proc.v3 import external_processor_pb2
from google.protobuf import descriptor_pb2


def closure(fd, seen, order):
    if fd.name in seen:
        return
    seen.add(fd.name)
    for dep in fd.dependencies:
        closure(dep, seen, order)
    p = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(p)
    order.append(p)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    order = []
    closure(external_processor_pb2.DESCRIPTOR, set(), order)
    with open(sys.argv[1], "wb") as f:
        f.write(descriptor_pb2.FileDescriptorSet(file=order).SerializeToString())
    print(" ".join(p.name for p in order if not p.name.startswith("google/protobuf/")))


if __name__ == "__main__":
    main()
